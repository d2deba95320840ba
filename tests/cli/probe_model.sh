#!/bin/sh
# aim-probe -m MODEL (trunk on the fly over a patches file, re-read each
# epoch) trains the same head as aim-extract followed by aim-probe on the
# stored features: with one batch holding every image the order cannot
# matter, so the two heads' logits must agree. Then aim-eval -m MODEL --head
# on the patches must score as aim-eval --head on the features.
set -eu
"$PYTHON" -c 'import numpy, zstandard' 2>/dev/null || { echo "numpy/zstandard not installed"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
M=$AIM_TOP/tests/data/model/tiny/model.safetensors
P=$AIM_TOP/tests/data/model/tiny/patches.aimt
"$BIN/aim-probe" -q --threads 2 -m "$M" --epochs 4 --batch 64 --lr 1e-2 -o "$work/a.safetensors" "$P"
"$BIN/aim-extract" -q -m "$M" "$P" >"$work/feat.aimt"
"$BIN/aim-probe" -q --threads 2 --heads 2 --epochs 4 --batch 64 --lr 1e-2 -o "$work/b.safetensors" "$work/feat.aimt"
"$BIN/aim-eval" -q --head "$work/a.safetensors" --logits-out "$work/la.aimt" "$work/feat.aimt" >"$work/a.txt"
"$BIN/aim-eval" -q --head "$work/b.safetensors" --logits-out "$work/lb.aimt" "$work/feat.aimt" >"$work/b.txt"
"$BIN/aim-eval" -q -m "$M" --head "$work/a.safetensors" --logits-out "$work/lm.aimt" "$P" >"$work/m.txt"
head -1 "$work/a.txt" "$work/m.txt"
cmp "$work/a.txt" "$work/m.txt"
"$PYTHON" - "$work" "$AIM_TOP/tests/ref" <<'PY'
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from probe_ref import stream_read
w = sys.argv[1]
la, lb, lm = (np.concatenate([r[0]["logits"] for r in stream_read(f"{w}/{n}.aimt")]) for n in ("la", "lb", "lm"))
assert la.shape == (5, 3), la.shape
d1 = np.abs(la - lb).max() / np.abs(la).max()
d2 = np.abs(la - lm).max() / np.abs(la).max()
print(f"-m vs extract+probe: {d1:.2e}; eval -m vs eval features: {d2:.2e}")
assert d1 < 1e-4 and d2 < 1e-5
# a trained head must differ from its initial weights: the check can fail
assert np.abs(la).max() > 0
PY
