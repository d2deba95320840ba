#!/bin/sh
# AIMv2 through the probe, eval and retrieval tools. aim-probe -m on an
# AIMv2 model reads the post-trunk RMSNorm of the last block (the published
# encoder's output), so it must train the same head as aim-extract --norm
# followed by aim-probe on the stored features (one batch holds every image:
# the order cannot matter), and aim-eval -m must score as aim-eval on the
# features; the features are the PyTorch reference's normed output
# (tests/ref/aimv2_ref.py); aim-retrieve finds each image as its own nearest
# neighbour.
set -eu
"$PYTHON" -c "import torch, zstandard" 2>/dev/null || { echo "torch not installed"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$PYTHON" "$AIM_TOP/tests/ref/aimv2_ref.py" gen "$T/m" --dim 32 --heads 4 --depth 2 --rows 4 \
	--cols 4 --patch 4 --mlp-hidden 64 --batch 6
M=$T/m/hf P=$T/m/patches.aimt
"$BIN/aim-probe" -q --threads 2 -m "$M" --epochs 4 --batch 64 --lr 1e-2 -o "$T/a.safetensors" "$P"
"$BIN/aim-extract" -q -m "$M" --norm "$P" -o "$T/feat.aimt"
"$PYTHON" "$AIM_TOP/tests/ref/aimv2_ref.py" check "$T/m/ref.safetensors" normed "$T/feat.aimt"
"$BIN/aim-probe" -q --threads 2 --epochs 4 --batch 64 --lr 1e-2 -o "$T/b.safetensors" "$T/feat.aimt"
"$BIN/aim-eval" -q --head "$T/a.safetensors" --logits-out "$T/la.aimt" "$T/feat.aimt" >"$T/a.txt"
"$BIN/aim-eval" -q --head "$T/b.safetensors" --logits-out "$T/lb.aimt" "$T/feat.aimt" >"$T/b.txt"
"$BIN/aim-eval" -q -m "$M" --head "$T/a.safetensors" --logits-out "$T/lm.aimt" "$P" >"$T/m.txt"
cmp "$T/a.txt" "$T/m.txt"
"$BIN/aim-retrieve" -q --bank "$T/feat.aimt" -k 1 "$T/feat.aimt" >"$T/nn.tsv"
"$PYTHON" - "$T" "$AIM_TOP/tests/ref" <<'PY'
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from probe_ref import stream_read
w = sys.argv[1]
la, lb, lm = (np.concatenate([r[0]["logits"] for r in stream_read(f"{w}/{n}.aimt")]) for n in ("la", "lb", "lm"))
assert la.shape == (6, 2), la.shape
d1 = np.abs(la - lb).max() / np.abs(la).max()
d2 = np.abs(la - lm).max() / np.abs(la).max()
print(f"-m vs extract --norm + probe: {d1:.2e}; eval -m vs eval features: {d2:.2e}")
assert d1 < 1e-4 and d2 < 1e-5 and np.abs(la).max() > 0
rows = [l.split("\t") for l in open(f"{w}/nn.tsv").read().split("\n") if l]
assert len(rows) == 6 and all(r[0] == r[2] for r in rows), rows
print("retrieval: every image its own nearest neighbour")
PY
