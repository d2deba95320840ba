#!/bin/sh
# aim-train's ablation options (--order, --attention, --objective,
# --mask-ratio, --head): each variant is recorded in aim.train and resumed
# as it is (a run cut short and resumed ends bit-identical to one that was
# not), aim-eval --pixel-loss evaluates the checkpoint as its variant, a
# variant cannot change on resuming, and wrong values are usage errors.
set -eu
$PYTHON -c 'import numpy' 2>/dev/null || { echo "no numpy for $PYTHON"; exit 77; }
REF="$AIM_TOP/tests/ref/train_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PYTHON "$REF" make-stream "$T/s.aimt" --n 96 --grid 3 5 --patch 2 --channels 1 --seed 5
$PYTHON "$REF" make-stream "$T/short.aimt" --n 40 --grid 3 5 --patch 2 --channels 1 --seed 5
$PYTHON "$REF" make-stream "$T/v.aimt" --n 7 --grid 3 5 --patch 2 --channels 1 --seed 6
C="--dim 16 --depth 2 --heads 2 --batch 8 --steps 12 --lr 3e-3 --save-every 4 --threads 1 -q"

meta() { # CHECKPOINT KEY: the value in aim.train
	"$BIN/aim-tensor" info --json "$1" | $PYTHON -c '
import json, sys
print(json.loads(json.loads(sys.stdin.readline())["metadata"]["aim.train"])[sys.argv[1]])' "$2"
}
for v in "--order spiral --head none" "--order random --attention causal --head-blocks 1" \
	 "--order checkerboard --head transformer --head-blocks 1" \
	 "--objective masked --mask-ratio 0.4 --head transformer --head-blocks 1"; do
	"$BIN/aim-train" $C $v --val "$T/v.aimt" -o "$T/full" "$T/s.aimt"
	"$BIN/aim-train" $C $v -o "$T/cut" "$T/short.aimt" 2>/dev/null
	"$BIN/aim-train" $C --resume "$T/cut" "$T/s.aimt"
	cmp "$T/full/step-00000012.safetensors" "$T/cut/step-00000012.safetensors" ||
		{ echo "$v: resumed run differs"; exit 1; }
	for kv in $(echo "$v" | sed 's/--\([a-z-]*\) \([a-z0-9.]*\)/\1=\2/g'); do
		k=${kv%%=*}; val=${kv#*=}
		case $k in head-blocks) continue ;; mask-ratio) k=mask_ratio ;; esac
		got=$(meta "$T/full/step-00000012.safetensors" "$k")
		[ "$got" = "$val" ] || { echo "$v: aim.train $k is $got"; exit 1; }
	done
	# the validation loss of the last step is aim-eval's for the checkpoint
	logged=$(tail -n 1 "$T/full/log.csv" | cut -d, -f6)
	"$BIN/aim-eval" -m "$T/full" --pixel-loss --json "$T/v.aimt" >"$T/eval.json"
	$PYTHON - "$logged" "$T/eval.json" <<'PY'
import json, sys
a, b = float(sys.argv[1]), json.load(open(sys.argv[2]))["pixel_loss"]
assert abs(a - b) <= 1e-6 * abs(b), (a, b)
PY
	# every variant's checkpoint gives features (the masked one carries
	# its mask token, which extraction leaves aside)
	"$BIN/aim-extract" -q -m "$T/full/step-00000012.safetensors" -o "$T/f.aimt" "$T/v.aimt" ||
		{ echo "$v: aim-extract refuses the checkpoint"; exit 1; }
	rm -rf "$T/full" "$T/cut"
done

# A variant cannot change on resuming; unchanged, it may be restated.
"$BIN/aim-train" $C --order spiral --steps 4 -o "$T/r" "$T/s.aimt"
"$BIN/aim-train" $C --order spiral --steps 8 --resume "$T/r" "$T/s.aimt"
set +e
"$BIN/aim-train" $C --order raster --steps 12 --resume "$T/r" "$T/s.aimt" 2>"$T/err"
[ $? -eq 1 ] && grep -q "order spiral.*--order cannot change" "$T/err" || { cat "$T/err"; exit 1; }
for bad in "--order zigzag" "--attention full" "--objective mae" "--head mlp2" \
	   "--objective masked --order spiral" "--objective masked --attention causal" \
	   "--mask-ratio 0.5" "--objective masked --mask-ratio 1" "--head none --head-blocks 2" \
	   "--head none --head-dim 32"; do
	"$BIN/aim-train" $C $bad -o "$T/x" "$T/s.aimt" 2>"$T/err"
	rc=$?
	[ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -le 2 ] && grep -q "^aim-train: " "$T/err" ||
		{ echo "$bad: exit $rc"; cat "$T/err"; exit 1; }
done
# The transformer head needs a width its heads divide.
"$BIN/aim-train" $C --head transformer --head-dim 20 --heads 8 --dim 16 -o "$T/x" "$T/s.aimt" 2>"$T/err"
[ $? -eq 1 ] && grep -q "not a multiple of 8 heads" "$T/err" || { cat "$T/err"; exit 1; }
exit 0
