#!/bin/sh
# AIMv2 through aim-extract against the PyTorch reference (tests/ref/aimv2_ref.py)
# on random models: every block's output and the post-trunk RMSNorm of the
# last, error <= 1e-4 of the feature scale (fp32), for each of the three
# layouts (ml-aim, transformers, timm), which must also give byte-identical
# features. Shapes: learned tables with qkv and linear biases, head dims 24
# and 8; a native (sin-cos) model on two different non-square grids, 1
# channel, F32 patches, pytorch_model.bin weights; a model converted by
# aim-tensor convert gives the same features.
set -eu
"$PYTHON" -c "import torch, zstandard" 2>/dev/null || { echo "torch not installed"; exit 77; }
REF="$PYTHON $AIM_TOP/tests/ref/aimv2_ref.py"
SAME="$PYTHON $AIM_TOP/tests/ref/aim_ref.py same"
X="$BIN/aim-extract --threads 2 -q"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
check() { # dir, depth, patches suffix
	d=$1 last=$(( $2 - 1 )) s=${3:-}
	for L in mlaim hf timm; do
		$X -m "$d/$L" --layers all --stack "$d/patches$s.aimt" -o "$d/all$s.$L.aimt"
		$X -m "$d/$L" --layers $last --norm "$d/patches$s.aimt" -o "$d/norm$s.$L.aimt"
		$REF check "$d/ref$s.safetensors" blocks "$d/all$s.$L.aimt"
		$REF check "$d/ref$s.safetensors" normed "$d/norm$s.$L.aimt"
	done
	for L in hf timm; do
		$SAME "$d/all$s.mlaim.aimt" "$d/all$s.$L.aimt"
		$SAME "$d/norm$s.mlaim.aimt" "$d/norm$s.$L.aimt"
	done
}
$REF gen "$T/a" --dim 48 --heads 2 --depth 3 --rows 4 --cols 4 --patch 4 --mlp-hidden 88 \
	--qkv-bias 1 --bias 1
check "$T/a" 3
$REF gen "$T/b" --dim 64 --heads 8 --depth 2 --rows 3 --cols 3 --patch 2 --mlp-hidden 176 --seed 5
check "$T/b" 2
# native: sin-cos positions, any grid
$REF gen "$T/n" --dim 32 --heads 4 --depth 2 --rows 3 --cols 5 --patch 2 --channels 1 \
	--learned 0 --grid2 6 2 --format bin --u8 0 --mlp-hidden 64
check "$T/n" 2
check "$T/n" 2 2
# converted to one safetensors file (aim.config carries the family): the same features
"$BIN/aim-tensor" convert "$T/a/hf" -o "$T/a/conv.safetensors" -q
$X -m "$T/a/conv.safetensors" --layers all --stack "$T/a/patches.aimt" -o "$T/a/conv.aimt"
$SAME "$T/a/all.mlaim.aimt" "$T/a/conv.aimt"
echo "aimv2 parity ok"
