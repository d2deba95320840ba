#!/bin/sh
# aim-retrieve: usage and input errors. Each runtime error is one line on
# stderr naming the file, exit 1; usage errors exit 2; a closed pipe
# downstream ends quietly.
set -u
R="$BIN/aim-retrieve"
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect CODE PATTERN CMD...: exit code, one stderr line matching PATTERN
expect() {
	code=$1 pat=$2; shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc -eq "$code" ] || bad "$* exited $rc, wanted $code: $(cat "$tmp/err")"
	if [ "$code" -eq 1 ]; then
		[ "$(wc -l <"$tmp/err")" -eq 1 ] || bad "$*: stderr is not one line: $(cat "$tmp/err")"
	fi
	[ -z "$pat" ] || grep -q -- "$pat" "$tmp/err" || bad "$*: stderr lacks '$pat': $(cat "$tmp/err")"
}

"$PY" - "$tmp" <<'PYEOF' || exit 1
import sys, os, numpy as np
sys.path.insert(0, os.path.join(os.environ["AIM_TOP"], "tests/ref"))
from retrieve_ref import features_stream
t = sys.argv[1]
rng = np.random.default_rng(0)
features_stream(t + "/bank.aimt", rng.standard_normal((20, 3, 8)), names=["b%d" % i for i in range(20)])
features_stream(t + "/q.aimt", rng.standard_normal((4, 8)))
features_stream(t + "/q16.aimt", rng.standard_normal((4, 16)))
x = rng.standard_normal((6, 8)); x[4, 2] = np.nan
features_stream(t + "/nanq.aimt", x, per_record=3)
features_stream(t + "/nanbank.aimt", np.concatenate([rng.standard_normal((20, 8)), x]))
features_stream(t + "/zero.aimt", np.zeros((0, 8)))
open(t + "/empty.aimt", "wb").close()
PYEOF

expect 0 "" "$R" --help
grep -q "^Usage: aim-retrieve" "$tmp/out" || bad "--help prints no usage"
expect 0 "" "$R" --version
expect 2 "unrecognized\|unknown\|invalid" "$R" --bank "$tmp/bank.aimt" --no-such-option
expect 2 "bank" "$R" "$tmp/q.aimt"
expect 2 "-k" "$R" --bank "$tmp/bank.aimt" -k 0 "$tmp/q.aimt"
expect 2 "format" "$R" --bank "$tmp/bank.aimt" --format xml "$tmp/q.aimt"
expect 2 "merge" "$R" --merge --bank "$tmp/bank.aimt" "$tmp/q.aimt"
expect 2 "shard" "$R" --bank "$tmp/bank.aimt" --shard 3/3 "$tmp/q.aimt"
expect 2 "diverse" "$R" --bank "$tmp/bank.aimt" --shard 0/2 --diverse 0.5 "$tmp/q.aimt"

expect 1 "q16.aimt.*dimension 16.*8" "$R" --bank "$tmp/bank.aimt" "$tmp/q16.aimt"
expect 1 "empty.aimt: empty bank" "$R" --bank "$tmp/empty.aimt" "$tmp/q.aimt"
expect 1 "zero.aimt: empty bank" "$R" --bank "$tmp/zero.aimt" "$tmp/q.aimt"
expect 1 "bank.aimt: -k 21 is larger than the bank (20" "$R" --bank "$tmp/bank.aimt" -k 21 "$tmp/q.aimt"
expect 1 "nanq.aimt record 1: NaN in features (sample 1)" "$R" --bank "$tmp/bank.aimt" "$tmp/nanq.aimt"
expect 1 "nanbank.aimt record 0: NaN in features (sample 24)" "$R" --bank "$tmp/nanbank.aimt" "$tmp/q.aimt"
expect 1 "missing.aimt" "$R" --bank "$tmp/missing.aimt" "$tmp/q.aimt"
expect 1 "no labelled entries" "$R" --bank "$tmp/bank.aimt" --knn -k 3 "$tmp/q.aimt"
# the queries before a bad record are answered: 3 queries x 2 neighbours
"$R" --bank "$tmp/bank.aimt" -k 2 "$tmp/nanq.aimt" >"$tmp/out" 2>/dev/null
[ "$(wc -l <"$tmp/out")" -eq 6 ] || bad "answers before the bad record: $(wc -l <"$tmp/out") lines"
# an output file is not left behind by a failure
"$R" --bank "$tmp/bank.aimt" -k 2 -o "$tmp/res.tsv" "$tmp/nanq.aimt" 2>/dev/null
[ -e "$tmp/res.tsv" ] && bad "partial -o file left behind"

# an index remembers how it was built
"$R" --bank "$tmp/bank.aimt" --save-index "$tmp/bank.idx" || bad "--save-index failed"
expect 1 "bank.idx: index was built normalised" "$R" --bank "$tmp/bank.idx" --ip "$tmp/q.aimt"
expect 1 "bank.idx: index was built with --pool mean" "$R" --bank "$tmp/bank.idx" --pool max "$tmp/q.aimt"
expect 1 "q16.aimt.*dimension" "$R" --bank "$tmp/bank.idx" "$tmp/q16.aimt"
head -c 1000 "$tmp/bank.idx" >"$tmp/cut.idx"
expect 1 "cut.idx" "$R" --bank "$tmp/cut.idx" "$tmp/q.aimt"

# merge: shards must answer the same queries
"$R" --bank "$tmp/bank.aimt" --shard 0/2 --format stream -o "$tmp/s0.aimt" "$tmp/q.aimt" || bad "shard 0"
"$R" --bank "$tmp/bank.aimt" --shard 1/2 --format stream -o "$tmp/s1.aimt" "$tmp/q16.aimt" 2>/dev/null &&
	bad "shard run on 16-d queries succeeded"
"$R" --bank "$tmp/bank.aimt" --shard 1/2 --format stream -o "$tmp/s1.aimt" "$tmp/q.aimt" "$tmp/q.aimt" ||
	bad "shard 1"
expect 1 "s1.aimt" "$R" --merge "$tmp/s0.aimt" "$tmp/s1.aimt"
expect 1 "q.aimt.*not a result stream\|neighbors" "$R" --merge "$tmp/q.aimt"

# a closed pipe downstream ends quietly
( "$R" --bank "$tmp/bank.aimt" -k 20 "$tmp/q.aimt" "$tmp/q.aimt" "$tmp/q.aimt" 2>"$tmp/err"; echo $? >"$tmp/rc" ) | head -n 1 >/dev/null
[ "$(cat "$tmp/rc")" = 0 ] || bad "closed pipe: exit $(cat "$tmp/rc") $(cat "$tmp/err")"
[ -s "$tmp/err" ] && bad "closed pipe: message $(cat "$tmp/err")"

[ $fails -eq 0 ] && echo "retrieve errors: all passed"
[ $fails -eq 0 ]
