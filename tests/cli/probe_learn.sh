#!/bin/sh
# A probe trained on a synthetic learnable task (each class's signature
# added to one token at a random place among noise) must reach near-perfect
# accuracy on held-out data: attentive (several learning rates, best on
# --val, F16 features) and linear probes (a small shuffle buffer), both
# evaluated by aim-eval; an untrained head must not.
set -eu
"$PYTHON" -c 'import numpy, zstandard' 2>/dev/null || { echo "numpy/zstandard not installed"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" learnable "$work" f16
"$BIN/aim-probe" -q --threads 2 --heads 4 --epochs 12 --batch 64 --lr 1e-3,1e-2 \
	--val "$work/val.aimt" -o "$work/att.safetensors" "$work/train.aimt"
"$BIN/aim-eval" --json --head "$work/att.safetensors" "$work/val.aimt" >"$work/att.json"
# a shuffle buffer of ~40 samples (0.02 MB of F16 [8, 32]) still trains
"$BIN/aim-probe" -q --threads 2 --probe linear --epochs 12 --batch 64 --lr 1e-2 \
	--shuffle-buffer 0.02 -o "$work/lin.safetensors" "$work/train.aimt"
"$BIN/aim-eval" --json --head "$work/lin.safetensors" "$work/val.aimt" >"$work/lin.json"
# an untrained head (one step at a tiny rate) must be far from perfect: the
# check below can fail
"$BIN/aim-probe" -q --threads 2 --heads 4 --epochs 1 --batch 2000 --lr 1e-9 --warmup 0 \
	-o "$work/raw.safetensors" "$work/train.aimt"
"$BIN/aim-eval" --json --head "$work/raw.safetensors" "$work/val.aimt" >"$work/raw.json"
"$PYTHON" - "$work" <<'PY'
import json, sys
w = sys.argv[1]
att, lin, raw = (json.load(open(f"{w}/{n}.json")) for n in ("att", "lin", "raw"))
print("attentive", att["top1"], "linear", lin["top1"], "untrained", raw["top1"])
assert att["n"] == 300
assert att["top1"] >= 97, att
assert lin["top1"] >= 80, lin  # mean pooling dilutes the one signed token
assert att["top1"] > lin["top1"]
assert raw["top1"] < 60, raw
PY
