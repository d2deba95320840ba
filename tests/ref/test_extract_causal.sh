#!/bin/sh
# aim-extract --mask causal (and aim-eval -m --mask causal): a causal model
# probed with its mask kept, in the order it was pretrained in, against a
# PyTorch reference (tests/ref/train_ref.py features): raster and spiral
# checkpoints of aim-train, features of every block averaged, tokens in the
# model's order; and bidirectional features as before.
set -eu
$PYTHON -c 'import torch' 2>/dev/null || { echo "no torch for $PYTHON"; exit 77; }
REF="$AIM_TOP/tests/ref/train_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PYTHON "$REF" make-stream "$T/s.aimt" --n 6 --grid 3 4 --patch 2 --channels 3 --seed 4
C="--dim 24 --depth 2 --heads 2 --head-blocks 1 --batch 3 --steps 2 --lr 1e-2 --threads 1 -q"
for order in raster spiral; do
	"$BIN/aim-train" $C --attention causal --order $order -o "$T/$order" "$T/s.aimt"
	ck="$T/$order/step-00000002.safetensors"
	for mask in none causal; do
		"$BIN/aim-extract" -m "$ck" --mask $mask --layers all -q -o "$T/f.aimt" "$T/s.aimt"
		$PYTHON "$REF" features --model "$ck" --data "$T/s.aimt" --features "$T/f.aimt" \
			--n 6 --heads 2 --mask $mask
	done
done
"$BIN/aim-tensor" info --json "$T/f.aimt" | grep -q '"aim.mask":"causal"' ||
	{ echo "no aim.mask metadata"; exit 1; }
# errors: an unknown mask, --mask without -m
set +e
"$BIN/aim-extract" -m "$ck" --mask full "$T/s.aimt" >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q "unknown --mask 'full'" "$T/err" || { cat "$T/err"; exit 1; }
"$BIN/aim-eval" --mask causal --head "$ck" "$T/s.aimt" >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q "need -m MODEL" "$T/err" || { cat "$T/err"; exit 1; }
"$BIN/aim-probe" --mask causal -o "$T/h.safetensors" "$T/f.aimt" >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q "need -m MODEL" "$T/err" || { cat "$T/err"; exit 1; }
exit 0
