#!/bin/sh
# aim-retrieve reading queries from a pipe (answered record by record):
# zstd frames larger than the read buffer, uncompressed streams and a
# truncated stream give the same answers as the files, or a clear error.
set -u
R="$BIN/aim-retrieve"
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$PY" - <<'PYEOF' || exit 1
import os, sys, numpy as np
sys.path.insert(0, os.path.join(os.environ["AIM_TOP"], "tests/ref"))
import retrieve_ref as r
rng = np.random.default_rng(0)
r.features_stream("bank.aimt", rng.standard_normal((3000, 256)).astype(np.float32), per_record=1000)
# 150 x 256 floats: each frame about 150 KB, more than one read
r.features_stream("big.aimt", rng.standard_normal((400, 256)).astype(np.float32), per_record=150)
raw = b"".join(r.record_bytes([("features", rng.standard_normal((n, 256)).astype(np.float32))])
               for n in (5, 300, 2))
open("raw.aimt", "wb").write(raw)
PYEOF

"$R" --bank bank.aimt big.aimt >file.tsv || bad "file queries"
cat big.aimt | "$R" --bank bank.aimt >pipe.tsv || bad "piped queries"
cmp -s file.tsv pipe.tsv || bad "large frames on a pipe differ from the file"
[ "$(wc -l <pipe.tsv)" -eq 4000 ] || bad "400 queries x 10: $(wc -l <pipe.tsv) lines"
"$R" --bank bank.aimt raw.aimt >file.tsv || bad "raw file queries"
cat raw.aimt | "$R" --bank bank.aimt >pipe.tsv || bad "raw piped queries"
cmp -s file.tsv pipe.tsv || bad "uncompressed stream on a pipe differs from the file"
head -c 200000 big.aimt | "$R" --bank bank.aimt >cut.tsv 2>err
[ $? -eq 1 ] || bad "truncated stream: exit status"
grep -q "standard input record 1: stream ends inside a record" err || bad "truncated: $(cat err)"
[ "$(wc -l <cut.tsv)" -eq 1500 ] || bad "the record before the cut is answered: $(wc -l <cut.tsv)"

[ $fails -eq 0 ] && echo "retrieve pipe: all passed"
[ $fails -eq 0 ]
