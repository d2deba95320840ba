#!/bin/sh
# A whole aim-probe run against PyTorch: from the same initial head
# (--init), full-batch training for 4 epochs (so the shuffling cannot
# matter) with warmup + cosine, AdamW (decay on the weight matrices only),
# label smoothing, BatchNorm running statistics; every tensor of the final
# head, attentive (two queries) and linear (with bias), must agree.
set -eu
"$PYTHON" -c 'import torch, numpy, zstandard' 2>/dev/null || { echo "torch not installed"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for kind in attentive linear; do
	echo "== $kind"
	"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" train-case "$work" $kind
	bias=; [ $kind = linear ] && bias=--linear-bias
	"$BIN/aim-probe" -q --threads 2 --probe $kind --queries 2 --heads 3 $bias \
		--init "$work/head0.safetensors" --epochs 4 --batch 1000 --lr 1e-2 --warmup 1 \
		--weight-decay 0.05 --label-smoothing 0.1 -o "$work/got.safetensors" "$work/feat.aimt"
	"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" compare-heads "$work/ref.safetensors" "$work/got.safetensors" 1e-4
done
