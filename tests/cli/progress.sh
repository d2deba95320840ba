#!/bin/sh
# Progress of aim-patchify, aim-extract, aim-probe and aim-eval
# (AIM_PROGRESS_SECONDS=0: a line at every batch):
#  - without a terminal: lines "YYYY-MM-DDTHH:MM:SSZ TOOL: N UNIT (R UNIT/s)",
#    with ", P%, ETA H:MM:SS" when the input is files on disk (and not on a pipe);
#  - on a terminal (script(1) gives one): the line rewritten in place (CR, erase);
#  - nothing with -q.
set -u
P=$BIN/aim-patchify
M=$AIM_TOP/tests/data/model/tiny/model.safetensors
F=$AIM_TOP/tests/data/probe/feats.aimt
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; [ -f "$T/err" ] && sed 's/^/  stderr: /' "$T/err" | head -5; exit 1; }
export AIM_PROGRESS_SECONDS=0
mkdir "$T/img"
"$PYTHON" - "$T/img" <<'PYEOF'
import struct, sys, zlib
def chunk(k, b): return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
for i in range(10):
    raw = b"".join(b"\0" + bytes((x * 7 + y * 3 + i) % 256 for x in range(20)) for y in range(16))
    open(f"{sys.argv[1]}/{i}.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20, 16, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PYEOF
stamp='^[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z'
known=' ([0-9.]* [a-z]*/s), [0-9.]*%, ETA [0-9]*:[0-9][0-9]:[0-9][0-9]'
# a line of each tool with the known size of its input
"$P" --size 12 --patch 4 --batch 2 -o "$T/p.aimt" "$T/img" 2>"$T/err" || fail "patchify"
grep -q "$stamp aim-patchify: [0-9]* images$known, epoch 0, 0 skipped\$" "$T/err" || fail "aim-patchify line"
"$BIN/aim-extract" -m "$M" --batch 2 -o "$T/f.aimt" "$T/p.aimt" 2>"$T/err" || fail "extract"
grep -q "$stamp aim-extract: [0-9]* images$known\$" "$T/err" || fail "aim-extract line"
"$BIN/aim-probe" --heads 2 --epochs 2 --batch 32 --lr 1e-3 -o "$T/h.safetensors" "$F" 2>"$T/err" || fail "probe"
grep -q "$stamp aim-probe: [0-9]* samples$known, epoch [12]/2, loss [0-9.]*\$" "$T/err" || fail "aim-probe line"
"$BIN/aim-eval" --batch 32 --head "$T/h.safetensors" "$F" >/dev/null 2>"$T/err" || fail "eval"
grep -q "$stamp aim-eval: [0-9]* samples$known, top-1 [0-9.]*\$" "$T/err" || fail "aim-eval line"
# on a pipe the size is not known: the count and the rate only
"$BIN/aim-extract" -m "$M" --batch 2 -o "$T/f.aimt" <"$T/p.aimt" 2>"$T/err" || fail "extract <file"
grep -q "$known" "$T/err" || fail "stdin redirected from a file: its size is known"
cat "$T/p.aimt" | "$BIN/aim-extract" -m "$M" --batch 2 -o "$T/f.aimt" 2>"$T/err" || fail "extract from a pipe"
grep -q "$stamp aim-extract: [0-9]* images ([0-9.]* images/s)\$" "$T/err" || fail "pipe: count and rate"
grep -q "%" "$T/err" && fail "pipe: a percentage without a known size"
# -q: nothing
"$P" -q --size 12 --patch 4 --batch 2 -o "$T/p.aimt" "$T/img" 2>"$T/err" || fail "patchify -q"
[ -s "$T/err" ] && fail "-q printed progress"
# a terminal: the line rewritten in place
if command -v script >/dev/null 2>&1; then
	script -qc "'$BIN/aim-extract' -m '$M' --batch 2 -o '$T/f.aimt' '$T/p.aimt'" /dev/null >"$T/tty" 2>&1 </dev/null
	printf '\r\033[Kaim-extract: ' >"$T/cr"
	grep -qF "$(cat "$T/cr")" "$T/tty" || fail "terminal: no line rewritten in place"
	grep -q "images/s), [0-9.]*%, ETA" "$T/tty" || fail "terminal: rate, percent, ETA"
	grep -q "$stamp" "$T/tty" && fail "terminal: timestamped log lines"
fi
echo ok
