#!/bin/sh
# aim-extract against the PyTorch reference (tests/ref/aim_ref.py) on random
# models of several shapes: every block's output, the probe average, the
# post-trunk norm, mean and attention pooling; error <= 1e-4 of the feature
# scale (fp32). Shapes: non-square grids, head dims 24, 8, 16 and 12, with
# and without biases, 1 and 3 channels, U8 and F32 patches, F32/F16/BF16
# weights.
set -eu
"$PYTHON" -c "import torch, zstandard" 2>/dev/null || { echo "torch not installed"; exit 77; }
REF="$PYTHON $AIM_TOP/tests/ref/aim_ref.py"
X="$BIN/aim-extract --threads 2 -q"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
run() { # name, gen options...
	n=$1; shift
	d=$T/$n
	$REF gen "$d" "$@"
	$X -m "$d/model.safetensors" --layers all --stack "$d/patches.aimt" -o "$d/all.aimt"
	$X -m "$d/model.safetensors" "$d/patches.aimt" -o "$d/avg.aimt"
	last=$(( $(sed 's/.*"num_blocks": \([0-9]*\).*/\1/' "$d/config.json") - 1 ))
	$X -m "$d/model.safetensors" --layers $last --norm "$d/patches.aimt" -o "$d/norm.aimt"
	$X -m "$d/model.safetensors" --layers all --stack --pool mean "$d/patches.aimt" -o "$d/mean.aimt"
	$X -m "$d/backbone.pth" --head "$d/head.pth" --pool attn "$d/patches.aimt" -o "$d/attn.aimt"
	$REF check-dir "$d"
}
run a --dim 48 --heads 2 --depth 3 --rows 3 --cols 5 --patch 4 --channels 3 --probe 2
run b --dim 40 --heads 5 --depth 2 --rows 4 --cols 2 --patch 3 --channels 1 --bias 1 --u8 0 --probe 1
run c --dim 64 --heads 4 --depth 2 --rows 2 --cols 6 --patch 2 --wdtype f16 --mlp-hidden 96
run d --dim 48 --heads 4 --depth 2 --rows 5 --cols 3 --patch 4 --wdtype bf16 --bias 1
echo "parity ok"
