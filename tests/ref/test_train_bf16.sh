#!/bin/sh
# aim-train --device cpu --precision bf16: one step against the PyTorch
# fp32 reference (tests/ref/train_ref.py check-step --precision bf16: loss
# to 2e-3, every gradient to 2e-2 of its norm, second moments to 4e-2, the
# update AdamW's from the run's own moments to 1e-5), in the two
# configurations of test_train_step.sh; then a bf16 run cut half-way and
# resumed ends bit-identical to an uninterrupted bf16 run on the same
# threads (weights, head, optimiser state and the log's losses). And
# aim-probe --tune in bf16 on an AIM v1 and an AIMv2 trunk (random models of
# tests/ref/tune_ref.py): every method trains (finite logits), its adapter
# evaluated by aim-eval in bf16 and in fp32 agrees to 2e-2 of the logits'
# scale, and the bf16 training is not the fp32 one. Skipped
# where the CPU has no native bf16 or the build no oneDNN.
set -eu
$PYTHON -c 'import torch' 2>/dev/null || { echo "no torch for $PYTHON"; exit 77; }
"$BIN/aim-train" --version | grep -q "bf16 brg:" ||
	{ echo "no native bf16 through oneDNN here"; exit 77; }
REF="$AIM_TOP/tests/ref/train_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
BF="--device cpu --precision bf16"

$PYTHON "$REF" make-stream "$T/grey.aimt" --n 12 --grid 4 4 --patch 4 --channels 1 --seed 1
A="--dim 32 --depth 2 --heads 2 --head-blocks 2 --head-dim 48 --batch 6 --accum 2 --lr 1e-3 --warmup 2 --seed 7 --threads 2 -q $BF"
"$BIN/aim-train" $A --steps 0 -o "$T/a0" "$T/grey.aimt"
"$BIN/aim-train" $A --steps 1 -o "$T/a1" "$T/grey.aimt"
$PYTHON "$REF" check-step --data "$T/grey.aimt" --before "$T/a0/step-00000000.safetensors" \
	--after "$T/a1/step-00000001.safetensors" --log "$T/a1/log.csv" \
	--batch 6 --heads 2 --seed 7 --lr 1e-3 --warmup 2 --precision bf16

$PYTHON "$REF" make-stream "$T/rgb.aimt" --n 5 --grid 3 4 --patch 2 --channels 3 --seed 2
B="--dim 24 --depth 3 --heads 3 --mlp-ratio 2 --head-blocks 1 --head-dim 20 --batch 5 --lr 2e-3 --warmup 0 --seed 11 --no-norm-pix --clip 0 --weight-decay 0.1 --threads 1 -q $BF"
"$BIN/aim-train" $B --steps 0 -o "$T/b0" "$T/rgb.aimt"
"$BIN/aim-train" $B --steps 1 -o "$T/b1" "$T/rgb.aimt"
$PYTHON "$REF" check-step --data "$T/rgb.aimt" --before "$T/b0/step-00000000.safetensors" \
	--after "$T/b1/step-00000001.safetensors" --log "$T/b1/log.csv" \
	--batch 5 --heads 3 --seed 11 --lr 2e-3 --warmup 0 --no-norm-pix --clip 0 --wd 0.1 \
	--precision bf16

# resumed half-way: bit-identical
$PYTHON "$REF" make-stream "$T/s.aimt" --n 400 --grid 4 4 --patch 4 --channels 1 --seed 5
$PYTHON "$REF" make-stream "$T/short.aimt" --n 90 --grid 4 4 --patch 4 --channels 1 --seed 5
C="--dim 64 --depth 2 --heads 2 --head-blocks 1 --batch 16 --steps 20 --lr 3e-3 --save-every 5 --threads 2 -q $BF"
"$BIN/aim-train" $C -o "$T/full" "$T/s.aimt"
"$BIN/aim-train" $C -o "$T/cut" "$T/short.aimt" 2>"$T/err"
grep -q "input ended after step 5 of 20" "$T/err" || { cat "$T/err"; exit 1; }
"$BIN/aim-train" $C --resume "$T/cut" "$T/s.aimt"
cmp "$T/full/step-00000020.safetensors" "$T/cut/step-00000020.safetensors"
[ "$(cut -d, -f1-4 "$T/full/log.csv")" = "$(cut -d, -f1-4 "$T/cut/log.csv")" ] ||
	{ echo "log.csv differs after resuming"; exit 1; }
# and the bf16 run is not the fp32 one (the products really were bf16)
"$BIN/aim-train" ${C%$BF} -o "$T/fp32" "$T/s.aimt"
! cmp -s "$T/full/step-00000020.safetensors" "$T/fp32/step-00000020.safetensors" ||
	{ echo "bf16 and fp32 runs are identical"; exit 1; }
# aim-probe --tune --precision bf16, both families, every method
TR="$AIM_TOP/tests/ref/tune_ref.py"
for v in v1 v2; do
	# --wide: products of 48 and 72 columns (narrower ones stay fp32 in bf16)
	$PYTHON "$TR" make "$T/$v" --wide $([ $v = v2 ] && echo --v2)
	M=$T/$v/model.safetensors P=$T/$v/patches.aimt
	for k in lora full adapter prompt; do
		extra=
		[ $k = lora ] && extra=--lora-targets=qkv,proj,fc1,fc2 && [ $v = v2 ] && extra=$extra,fc3
		for p in fp32 bf16; do
			out="--adapter-out $T/$v-$k-$p"
			[ $k = full ] && out="--model-out $T/$v-full-$p.safetensors"
			"$BIN/aim-probe" -q --threads 2 -m "$M" --device cpu --precision $p --tune $k $extra \
				--epochs 2 --batch 6 --lr 1e-2 --seed 3 -o "$T/$v-$k-$p.safetensors" $out "$P"
		done
		cmp -s "$T/$v-$k-fp32.safetensors" "$T/$v-$k-bf16.safetensors" &&
			{ echo "$v $k: bf16 and fp32 heads are identical"; exit 1; }
		m=$M ad="--adapter $T/$v-$k-bf16"
		[ $k = full ] && m=$T/$v-full-bf16.safetensors ad=
		for p in fp32 bf16; do
			"$BIN/aim-eval" -q --device cpu --precision $p -m "$m" $ad \
				--head "$T/$v-$k-bf16.safetensors" --logits-out "$T/lg-$v-$k-$p.aimt" "$P" >/dev/null
		done
		$PYTHON - "$T/lg-$v-$k" "$AIM_TOP/tests/ref" "$v $k" <<'PY'
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import aim_ref
a, b = (np.concatenate([t["logits"] for t, _ in aim_ref.read_stream(f"{sys.argv[1]}-{p}.aimt")])
        for p in ("fp32", "bf16"))
d = np.abs(a - b).max() / np.abs(a).max()
print(f"--tune {sys.argv[3]} trained in bf16: aim-eval bf16 vs fp32 logits {d:.2e}")
assert np.isfinite(a).all() and np.isfinite(b).all() and d <= 2e-2, d
PY
	done
done
echo "bf16 training ok"
