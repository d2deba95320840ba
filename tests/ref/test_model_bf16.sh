#!/bin/sh
# aim-extract --precision bf16 --device cpu against the PyTorch fp32
# reference (tests/ref/aim_ref.py): every block's output of random models,
# per-token cosine similarity >= 0.999 (bf16 operands keep 8 bits of
# mantissa; the error that leaves is far above fp32's 1e-4 of scale, far
# below what changes a feature's direction). Also the post-trunk norm and
# a batch cut into sample groups (the threaded inference path). Skipped
# where the CPU has no native bf16 or the build no oneDNN.
set -eu
"$PYTHON" -c "import torch, zstandard" 2>/dev/null || { echo "torch not installed"; exit 77; }
"$BIN/aim-extract" --version | grep -q "bf16 brg:" ||
	{ echo "no native bf16 through oneDNN here"; exit 77; }
REF="$PYTHON $AIM_TOP/tests/ref/aim_ref.py"
X="$BIN/aim-extract --threads 2 -q --device cpu --precision bf16"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
run() { # name, gen options...
	n=$1; shift
	d=$T/$n
	$REF gen "$d" "$@"
	$X -m "$d/model.safetensors" --layers all --stack "$d/patches.aimt" -o "$d/all.aimt"
	$REF compare "$d/all.aimt" "$d/ref.safetensors" --key blocks --cosine 0.999
	last=$(( $(sed 's/.*"num_blocks": \([0-9]*\).*/\1/' "$d/config.json") - 1 ))
	$X -m "$d/model.safetensors" --layers $last --norm "$d/patches.aimt" -o "$d/norm.aimt"
	$REF compare "$d/norm.aimt" "$d/ref.safetensors" --key normed --cosine 0.999
}
run a --dim 96 --heads 4 --depth 4 --rows 6 --cols 6 --patch 4 --channels 3 --probe 2
run b --dim 64 --heads 2 --depth 3 --rows 4 --cols 5 --patch 3 --bias 1 --u8 0 --batch 13
run c --dim 128 --heads 4 --depth 2 --rows 8 --cols 8 --patch 2 --mlp-hidden 320 --batch 13
echo "bf16 parity ok"
