#!/bin/sh
# End to end, as the published main_attnprobe.py evaluates: a random AIM
# model and head (published names, Hugging Face layout: config.json +
# model.safetensors) on a few images of an ImageFolder tree;
#   images -> aim-patchify (val transform) -> aim-eval -m MODEL
# must give the top-1, top-5, loss, per-class accuracy and logits of the
# PyTorch reference applied to torchvision's val transform of the same images;
# also from the weights saved as PyTorch .pth files, and through
# examples/in1k-probe.sh.
set -eu
"$PYTHON" -c 'import torch, torchvision, PIL, numpy, zstandard' 2>/dev/null || { echo "torch/torchvision not installed"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" e2e-case "$work"
"$BIN/aim-patchify" -q --size 28 --patch 7 "$work/val" |
	"$BIN/aim-eval" -q --json -m "$work/hf" --logits-out "$work/logits.aimt" >"$work/got.json"
cat "$work/got.json"; echo
"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" eval-check "$work" "$work/got.json" "$work/logits.aimt"
# the same weights as PyTorch checkpoints (backbone .pth + head .pth, the
# release's form) give the same numbers
"$BIN/aim-patchify" -q --size 28 --patch 7 "$work/val" |
	"$BIN/aim-eval" -q --json -m "$work/pth/backbone.pth" --head "$work/pth/head.pth" >"$work/got_pth.json"
"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" eval-check "$work" "$work/got_pth.json"
# the example script runs the same pipeline and prints the published line
AIM_BIN=$BIN AIM_SIZE=28 AIM_PATCH=7 sh "$AIM_TOP/examples/in1k-probe.sh" "$work/val" "$work/hf" >"$work/example.txt"
cat "$work/example.txt" | head -3
"$PYTHON" - "$work" <<'PY'
import json, sys
w = sys.argv[1]
ref = json.load(open(f"{w}/ref.json"))
want = "Averaged stats: test_loss: %.4f  acc1: %.4f  acc5: %.4f" % (ref["loss"], ref["top1"], ref["top5"])
got = open(f"{w}/example.txt").read()
assert want in got, (want, got)
PY
