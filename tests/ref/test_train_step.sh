#!/bin/sh
# One aim-train step against a PyTorch reference (tests/ref/train_ref.py):
# same initial weights (the step-0 checkpoint), same batch, same prefix
# lengths. Loss, gradient norm, every gradient (through the AdamW first
# moments), the second moments and the updated weights must agree to 1e-4
# relative. Two configurations: grey square grid with micro-batches and
# clipping; RGB non-square grid, raw-pixel loss, no clipping; an AIMv2
# trunk (--arch aimv2: RMSNorm, SwiGLU, learned positions) on that grid.
set -eu
$PYTHON -c 'import torch' 2>/dev/null || { echo "no torch for $PYTHON"; exit 77; }
REF="$AIM_TOP/tests/ref/train_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

$PYTHON "$REF" make-stream "$T/grey.aimt" --n 12 --grid 4 4 --patch 4 --channels 1 --seed 1
A="--dim 32 --depth 2 --heads 2 --head-blocks 2 --head-dim 48 --batch 6 --accum 2 --lr 1e-3 --warmup 2 --seed 7 --threads 2 -q"
"$BIN/aim-train" $A --steps 0 -o "$T/a0" "$T/grey.aimt"
"$BIN/aim-train" $A --steps 1 -o "$T/a1" "$T/grey.aimt"
$PYTHON "$REF" check-step --data "$T/grey.aimt" --before "$T/a0/step-00000000.safetensors" \
	--after "$T/a1/step-00000001.safetensors" --log "$T/a1/log.csv" \
	--batch 6 --heads 2 --seed 7 --lr 1e-3 --warmup 2

$PYTHON "$REF" make-stream "$T/rgb.aimt" --n 5 --grid 3 4 --patch 2 --channels 3 --seed 2
B="--dim 24 --depth 3 --heads 3 --mlp-ratio 2 --head-blocks 1 --head-dim 20 --batch 5 --lr 2e-3 --warmup 0 --seed 11 --no-norm-pix --clip 0 --weight-decay 0.1 --threads 1 -q"
"$BIN/aim-train" $B --steps 0 -o "$T/b0" "$T/rgb.aimt"
"$BIN/aim-train" $B --steps 1 -o "$T/b1" "$T/rgb.aimt"
$PYTHON "$REF" check-step --data "$T/rgb.aimt" --before "$T/b0/step-00000000.safetensors" \
	--after "$T/b1/step-00000001.safetensors" --log "$T/b1/log.csv" \
	--batch 5 --heads 3 --seed 11 --lr 2e-3 --warmup 0 --no-norm-pix --clip 0 --wd 0.1

C="--arch aimv2 --dim 24 --depth 2 --heads 2 --head-blocks 1 --head-dim 20 --batch 5 --lr 2e-3 --warmup 0 --seed 13 --threads 2 -q"
"$BIN/aim-train" $C --steps 0 -o "$T/c0" "$T/rgb.aimt"
"$BIN/aim-train" $C --steps 1 -o "$T/c1" "$T/rgb.aimt"
$PYTHON "$REF" check-step --data "$T/rgb.aimt" --before "$T/c0/step-00000000.safetensors" \
	--after "$T/c1/step-00000001.safetensors" --log "$T/c1/log.csv" \
	--batch 5 --heads 2 --seed 13 --lr 2e-3 --warmup 0

# The ablation variants (aim-train(1)): each order, causal attention, the
# masked objective and both new heads, on square and non-square grids.
variant() { # NAME STREAM "TRAIN OPTIONS" "REFERENCE OPTIONS"
	"$BIN/aim-train" $3 --steps 0 -o "$T/$1.0" "$2"
	"$BIN/aim-train" $3 --steps 1 -o "$T/$1.1" "$2"
	echo "variant $1:"
	$PYTHON "$REF" check-step --data "$2" --before "$T/$1.0/step-00000000.safetensors" \
		--after "$T/$1.1/step-00000001.safetensors" --log "$T/$1.1/log.csv" $4
}
N="--dim 24 --depth 2 --heads 2 --batch 5 --lr 1e-3 --warmup 0 --seed 5 --threads 2 -q"
V="$N --head-blocks 2 --head-dim 16"
R="--batch 5 --heads 2 --seed 5 --lr 1e-3 --warmup 0"
variant spiral "$T/rgb.aimt" "$N --order spiral --head none" "$R --order spiral --head none"
variant checker "$T/grey.aimt" "$V --order checkerboard --attention causal" \
	"$R --order checkerboard --attention causal"
variant random "$T/rgb.aimt" "$V --order random --head transformer --accum 5" \
	"$R --order random --head transformer"
variant spiralsq "$T/grey.aimt" "$V --order spiral --attention causal --head transformer" \
	"$R --order spiral --attention causal --head transformer"
variant masked "$T/rgb.aimt" "$V --objective masked --mask-ratio 0.5 --head transformer" \
	"$R --objective masked --mask-ratio 0.5 --head transformer"
variant masked75 "$T/grey.aimt" "$V --objective masked --no-norm-pix" \
	"$R --objective masked --mask-ratio 0.75 --no-norm-pix"
