#!/bin/sh
# The Python reader printed in aim-stream(5) reads what aim writes, and the
# tensors equal what Python put into the fixture (written without aim).
set -eu
$PYTHON -c "import zstandard, numpy" 2>/dev/null || { echo "python3-zstandard missing"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
sed -n '/BEGIN PYTHON EXAMPLE/,/END PYTHON EXAMPLE/p' "$AIM_TOP/man/aim-stream.5" | sed '1d;$d' |
	sed 's/\\\\/\\/g' >"$T/reader.py"
"$BIN/aim-tensor" cat --batch 5 "$AIM_TOP/tests/data/stream/good.aimt" >"$T/rebatched.aimt"
"$BIN/aim-tensor" cat --level 0 "$AIM_TOP/tests/data/stream/good.aimt" >"$T/raw.aimt"
$PYTHON "$T/reader.py" "$T/rebatched.aimt" >"$T/out.txt"
grep -q "'patches': (5, 4, 12)" "$T/out.txt"
grep -q "img2_0.png" "$T/out.txt"
cat >"$T/compare.py" <<'PY'
import sys, importlib.util, numpy as np
spec = importlib.util.spec_from_file_location("reader", sys.argv[1])
src = open(sys.argv[1]).read().split("with open(sys.argv[1]")[0]
ns = {}; exec(src, ns)
def load(path):
    with open(path, "rb") as f:
        recs = list(ns["records"](f))
    return {k: np.concatenate([t[k] for t, _ in recs]) for k in recs[0][0]}
a, b, c = load(sys.argv[2]), load(sys.argv[3]), load(sys.argv[4])
for k in a:
    assert np.array_equal(a[k], b[k]), k
    assert np.array_equal(a[k], c[k]), k
print("ok", {k: v.shape for k, v in a.items()})
PY
$PYTHON "$T/compare.py" "$T/reader.py" "$AIM_TOP/tests/data/stream/raw.aimt" "$T/rebatched.aimt" "$T/raw.aimt"
