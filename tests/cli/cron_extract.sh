#!/bin/sh
# examples/cron-extract.sh, the incremental extraction job, as cron runs it:
#  - after runs that add, change (size, mtime, content) and delete images, and
#    make good images bad and bad ones good, and after a run killed with
#    kill -9 half-way, the bank equals a from-scratch run over the final
#    directory: same names in the same order, same ids, bit-identical vectors;
#    errors.tsv names every bad image with its reason;
#  - a killed run resumes: the rerun decodes only what was not committed;
#  - a second run while one holds the lock says so, exits 75, changes nothing;
#  - it runs under cron's bare environment (env -i, minimal PATH, another
#    working directory), finding the tools through AIM_BIN or PATH;
#  - a real failure (a model that cannot be read) exits non-zero and leaves
#    the bank as it was;
#  - the job in two shards (AIM_SHARD=i/2), the shards' indexes merged with
#    aim-retrieve --add ... --sync, equals the single run;
#  - a second run over 10,000 unchanged images decodes none of them.
set -u
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c 'import PIL' 2>/dev/null || { echo "python3-pil not installed"; exit 77; }
JOB=$AIM_TOP/examples/cron-extract.sh
MODEL=$AIM_TOP/tests/data/model/tiny/model.safetensors
T=$(mktemp -d)
trap '[ -s "$T/pgid" ] && kill -9 -"$(cat "$T/pgid")" 2>/dev/null; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; [ -f "$T/err" ] && sed 's/^/  stderr: /' "$T/err"; exit 1; }
# cron's environment: nothing but a minimal PATH, another working directory
cronrun() {
	(cd / && env -i PATH=/usr/bin:/bin AIM_BIN="${AIMBIN:-$BIN}" AIM_SIZE=12 AIM_PATCH=4 \
		AIM_COMMIT_EVERY=8 AIM_THREADS=2 ${EXTRA_ENV:-} sh "$JOB" "$@") </dev/null
}
images() { # DIR FIRST COUNT SEED: PNGs of varying size and content
	"$PY" - "$@" <<'PYEOF'
import os, random, sys
from PIL import Image
d, first, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(d, exist_ok=True)
for i in range(first, first + count):
    r = random.Random(seed * 100003 + i)
    w, h = r.randrange(12, 40), r.randrange(12, 40)
    sub = "a" if i % 3 else "b/c"
    os.makedirs(f"{d}/{sub}", exist_ok=True)
    Image.frombytes("RGB", (w, h), bytes(r.randrange(256) for _ in range(w * h * 3))).save(f"{d}/{sub}/im{i:05d}.png")
PYEOF
}
# names, ids and vectors of an index, for comparing two banks exactly
dump() {
	"$PY" - "$1" <<'PYEOF'
import json, struct, sys, hashlib
d = open(sys.argv[1], "rb").read()
(n,) = struct.unpack_from("<Q", d, 0); hdr = json.loads(d[8:8 + n]); base = 8 + n
def raw(k): a, b = hdr[k]["data_offsets"]; return d[base + a:base + b]
names = raw("names").split(b"\0")[:-1]
N = hdr["vectors"]["shape"][0]
ids = struct.unpack("<%dq" % N, raw("id"))
assert len(names) == N == len(ids)
vec = raw("vectors"); row = len(vec) // N if N else 0
for i in range(N):
    print(names[i].decode(), ids[i], hashlib.sha256(vec[i * row:(i + 1) * row]).hexdigest()[:16])
PYEOF
}
rows() { "$BIN/aim-retrieve" --bank "$1/bank.idx" --list | wc -l; }

D=$T/images
images "$D" 0 40 1
printf 'not an image\n' >"$D/a/broken.png"
# 1. first run
cronrun "$D" "$MODEL" "$T/bank" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] || fail "first run: exit $rc"
[ "$(rows "$T/bank")" -eq 40 ] || fail "first run: $(rows "$T/bank") rows, want 40"
grep -q "^$D/a/broken.png	" "$T/bank/errors.tsv" || fail "errors.tsv lacks the broken image"
[ "$(wc -l <"$T/bank/errors.tsv")" -eq 1 ] || fail "errors.tsv: $(cat "$T/bank/errors.tsv")"
# 2. add, change, delete; a good image goes bad, the bad one is mended
images "$D" 40 6 1
images "$D" 3 1 7                                     # new content, new size
images "$D" 4 1 1                                     # same bytes, the mtime moves
touch -d '2001-01-01' "$D/a/im00005.png"              # only the mtime
rm "$D/a/im00007.png" "$D/b/c/im00009.png" "$D/a/im00010.png"
head -c 100 "$D/a/im00011.png" >"$T/x" && mv "$T/x" "$D/a/im00011.png"
cp "$D/a/im00001.png" "$D/a/broken.png"
cronrun "$D" "$MODEL" "$T/bank" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] || fail "second run: exit $rc"
grep -q "10 images written, 1 skipped, 33 up to date" "$T/err" || fail "second run did not redo exactly the 10 new and changed images"
grep -q "^$D/a/im00011.png	PNG: .*truncated" "$T/bank/errors.tsv" || fail "errors.tsv: $(cat "$T/bank/errors.tsv")"
# 3. a run killed with kill -9 after two commits (an aim-extract that stalls
# after 20 images stands in for a machine going down), then resumed
images "$D" 100 40 3
rm "$D/a/im00013.png"
mkdir "$T/slowbin"
for t in aim-patchify aim-retrieve aim-tensor; do ln -s "$BIN/$t" "$T/slowbin/$t"; done
cat >"$T/slowbin/aim-extract" <<EOS
#!/bin/sh
"$BIN/aim-extract" "\$@" | { "$BIN/aim-tensor" head -n 20; sleep 600; }
EOS
chmod +x "$T/slowbin/aim-extract"
before=$(rows "$T/bank")
( cd / && exec setsid env -i PATH=/usr/bin:/bin AIM_BIN="$T/slowbin" AIM_SIZE=12 AIM_PATCH=4 AIM_COMMIT_EVERY=8 \
	sh -c 'echo $$ >"$1"; exec sh "$2" "$3" "$4" "$5"' sh "$T/pgid" "$JOB" "$D" "$MODEL" "$T/bank" ) \
	</dev/null >/dev/null 2>"$T/killed.err" &
i=0
while [ $i -lt 600 ]; do # until the second commit (16 images) is in the index
	n=$("$BIN/aim-retrieve" --bank "$T/bank/bank.idx" --list 2>/dev/null | wc -l)
	[ "$n" -ge $((before - 1 + 16)) ] && [ "$n" -ne "$before" ] && break
	sleep 0.1; i=$((i + 1))
done
[ $i -lt 600 ] || fail "the stalled run committed nothing in a minute: $(cat "$T/killed.err")"
kill -9 -"$(cat "$T/pgid")" || fail "kill -9"
wait
rm "$T/pgid"
# the second run is refused while a run holds the lock
(exec 9>>"$T/bank/lock"; flock 9; exec sleep 30) & holder=$!
sleep 0.5
cronrun "$D" "$MODEL" "$T/bank" 2>"$T/err"; rc=$?
kill $holder; wait $holder 2>/dev/null
[ $rc -eq 75 ] || fail "concurrent run: exit $rc, want 75"
grep -q "is being updated by another run" "$T/err" || fail "concurrent run: no clear message"
cronrun "$D" "$MODEL" "$T/bank" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] || fail "resumed run: exit $rc"
grep -q "24 images written, 1 skipped, 58 up to date" "$T/err" || fail "the resumed run did not start where the killed one stopped"
ls "$T/bank" | grep -q '^run\.' && fail "the killed run's work directory was not cleaned up"
# 4. the same job from scratch over the final directory
cronrun "$D" "$MODEL" "$T/scratch" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] || fail "from-scratch run: exit $rc"
dump "$T/bank/bank.idx" >"$T/inc.txt" && dump "$T/scratch/bank.idx" >"$T/scratch.txt" || fail "dump"
[ "$(wc -l <"$T/scratch.txt")" -eq 82 ] || fail "from scratch: $(wc -l <"$T/scratch.txt") rows, want 82"
cmp -s "$T/inc.txt" "$T/scratch.txt" || { diff "$T/inc.txt" "$T/scratch.txt" | head; fail "the incremental bank differs from the from-scratch one"; }
cmp -s "$T/bank/errors.tsv" "$T/scratch/errors.tsv" || fail "errors.tsv differ"
# 4b. scaled out: two shards (AIM_SHARD), their indexes merged under the
# whole listing, equal the single run too
EXTRA_ENV=AIM_SHARD=0/2 cronrun "$D" "$MODEL" "$T/shard0" 2>"$T/err" || fail "shard 0/2"
EXTRA_ENV=AIM_SHARD=1/2 cronrun "$D" "$MODEL" "$T/shard1" 2>"$T/err" || fail "shard 1/2"
"$BIN/aim-patchify" --list --classes none -o "$T/full.tsv" "$D" || fail "listing"
"$BIN/aim-retrieve" --add "$T/shard*/bank.idx" --sync "$T/full.tsv" --save-index "$T/merged.idx" 2>"$T/err" ||
	fail "merging the shards' indexes"
dump "$T/merged.idx" >"$T/merged.txt" || fail "dump merged"
cmp -s "$T/merged.txt" "$T/scratch.txt" || { diff "$T/merged.txt" "$T/scratch.txt" | head; fail "the merged shards differ from the single run"; }
# 5. tools found on PATH when AIM_BIN is not set (the script copied away)
cp "$JOB" "$T/job.sh"
(cd / && env -i PATH="$BIN:/usr/bin:/bin" AIM_SIZE=12 AIM_PATCH=4 sh "$T/job.sh" "$D" "$MODEL" "$T/bank") \
	</dev/null 2>"$T/err" || fail "tools on PATH: exit $?"
grep -q "0 images written, 1 skipped, 82 up to date" "$T/err" || fail "tools on PATH: not a no-op"
# 6. a real failure: non-zero; the bank holds what it held (as after a kill,
# only the ids may move to the new listing's positions)
images "$D" 200 2 4
cronrun "$D" "$T/no-such-model.safetensors" "$T/bank" 2>"$T/err"; rc=$?
[ $rc -ne 0 ] || fail "a missing model: exit 0"
grep -q "no-such-model" "$T/err" || fail "a missing model: not named"
grep -q "aim-extract failed" "$T/err" || fail "a missing model: the failing stage not named"
dump "$T/bank/bank.idx" | cut -d' ' -f1,3 >"$T/after.txt"
cut -d' ' -f1,3 "$T/inc.txt" | cmp -s - "$T/after.txt" || fail "a failed run changed the bank's rows"
# 7. 10,000 unchanged images: the second run decodes none
images "$T/many" 0 10000 5 || fail "generating 10,000 images"
EXTRA_ENV=AIM_BATCH=64 cronrun "$T/many" "$MODEL" "$T/bank2" 2>"$T/err" || fail "10,000 images: first run"
start=$(date +%s)
cronrun "$T/many" "$MODEL" "$T/bank2" 2>"$T/err" || fail "10,000 images: second run"
echo "second run over 10,000 unchanged images: $(( $(date +%s) - start )) s (not checked)"
grep -q "0 images written in 0 records, 10000 up to date" "$T/err" || fail "10,000 unchanged images were decoded again"
echo ok
