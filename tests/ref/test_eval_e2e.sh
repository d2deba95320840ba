#!/bin/sh
# End to end, as the published main_attnprobe.py evaluates: a random AIM
# model and head (published names, Hugging Face layout: config.json +
# model.safetensors) on a few images of an ImageFolder tree;
#   images -> aim-patchify (val transform) -> aim-eval -m MODEL
# must give the top-1, top-5, loss, per-class accuracy and logits of the
# PyTorch reference applied to torchvision's val transform of the same images;
# also from the weights saved as PyTorch .pth files, and through
# examples/in1k-probe.sh, on the class folders and on the same images as
# one flat folder with a labels file (aim-patchify --labels), as the ILSVRC
# validation set ships: by class names, and by indices with a classes file.
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
# the same images as one flat folder plus a labels file give the same output
mkdir "$work/flat"
: >"$work/labels.txt"; : >"$work/labels_idx.txt"
i=0
for c in $(ls "$work/val"); do
	for f in $(ls "$work/val/$c"); do
		cp "$work/val/$c/$f" "$work/flat/${c}__$f"
		echo "${c}__$f $c" >>"$work/labels.txt"
		echo "${c}__$f $i" >>"$work/labels_idx.txt"
	done
	echo "$c" >>"$work/classes.txt"
	i=$((i + 1))
done
AIM_BIN=$BIN AIM_SIZE=28 AIM_PATCH=7 AIM_LABELS="$work/labels.txt" \
	sh "$AIM_TOP/examples/in1k-probe.sh" "$work/flat" "$work/hf" >"$work/flat.txt"
cmp "$work/example.txt" "$work/flat.txt" || { echo "flat folder + labels differs from class folders"; diff "$work/example.txt" "$work/flat.txt" | head; exit 1; }
AIM_BIN=$BIN AIM_SIZE=28 AIM_PATCH=7 AIM_LABELS="$work/labels_idx.txt" AIM_CLASSES="$work/classes.txt" \
	sh "$AIM_TOP/examples/in1k-probe.sh" "$work/flat" "$work/hf" >"$work/flat_idx.txt"
cmp "$work/example.txt" "$work/flat_idx.txt" || { echo "labels by index differ from class folders"; exit 1; }
echo "flat folder + labels: same output"
