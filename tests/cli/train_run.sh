#!/bin/sh
# aim-train on a small synthetic stream: the loss falls, the run directory
# holds checkpoints, log.csv, loss.png and predictions.png, the final
# checkpoint loads as a model (aim-extract), and --help / bad options
# behave.
set -eu
$PYTHON -c 'import numpy' 2>/dev/null || { echo "no numpy for $PYTHON"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PYTHON "$AIM_TOP/tests/ref/train_ref.py" make-stream "$T/s.aimt" --n 1200 --grid 4 4 --patch 4 --channels 1 --seed 3
$PYTHON "$AIM_TOP/tests/ref/train_ref.py" make-stream "$T/v.aimt" --n 16 --grid 4 4 --patch 4 --channels 1 --seed 4

"$BIN/aim-train" --dim 48 --depth 2 --heads 2 --head-blocks 1 --batch 16 --steps 75 \
	--lr 3e-3 --save-every 25 --val "$T/v.aimt" --threads 1 -o "$T/run" "$T/s.aimt" 2>"$T/err"
for f in step-00000025.safetensors step-00000050.safetensors step-00000075.safetensors \
	log.csv loss.png predictions.png; do
	[ -s "$T/run/$f" ] || { echo "missing $f"; ls "$T/run"; exit 1; }
done
grep -q "done: step 75" "$T/err" || { cat "$T/err"; exit 1; }
head -n 1 "$T/run/log.csv" | grep -qx "step,loss,lr,grad_norm,images_per_s,val_loss"
[ "$(wc -l <"$T/run/log.csv")" -eq 76 ] || { echo "log.csv rows"; exit 1; }
# validation loss at each checkpoint, and the loss falls: the mean of the
# last 10 steps is well below the mean of the first 10
$PYTHON - "$T/run/log.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
first = sum(float(r["loss"]) for r in rows[:10]) / 10
last = sum(float(r["loss"]) for r in rows[-10:]) / 10
vals = [r["step"] for r in rows if r["val_loss"]]
print("loss first 10 steps %.4f, last 10 %.4f; val at steps %s" % (first, last, vals))
assert vals == ["25", "50", "75"], vals
assert last < 0.6 * first, "loss did not fall"
PY

# The checkpoint is a model file aim-extract takes as it is.
if [ -x "$BIN/aim-extract" ]; then
	"$BIN/aim-extract" -m "$T/run/step-00000075.safetensors" "$T/v.aimt" -o "$T/f.aimt" 2>"$T/err" ||
		{ cat "$T/err"; exit 1; }
	[ -s "$T/f.aimt" ]
fi

# A time budget of 2 seconds plans and ends the run within it.
start=$(date +%s)
"$BIN/aim-train" --dim 48 --depth 2 --heads 2 --head-blocks 1 --batch 16 --steps 100000 \
	--minutes 0.035 --threads 1 -o "$T/budget" "$T/s.aimt" 2>"$T/err" || { cat "$T/err"; exit 1; }
[ $(( $(date +%s) - start )) -le 8 ] || { echo "time budget overrun"; exit 1; }
grep -q "time budget of 0.035 minutes: [0-9]* steps" "$T/err" || { cat "$T/err"; exit 1; }
ls "$T/budget"/step-*.safetensors >/dev/null

"$BIN/aim-train" --help | grep -q -- "--resume RUNDIR"
set +e
"$BIN/aim-train" --no-such-option -o "$T/x" 2>/dev/null; [ $? -eq 2 ] || exit 1
"$BIN/aim-train" --dim 32 --depth 1 --heads 2 2>/dev/null; [ $? -eq 2 ] || exit 1
"$BIN/aim-train" --batch 10 --accum 3 -o "$T/x" 2>/dev/null; [ $? -eq 2 ] || exit 1
"$BIN/aim-train" --preset nope -o "$T/x" 2>/dev/null; [ $? -eq 2 ] || exit 1
exit 0
# The input reader runs a batch ahead: when the steps are done it is
# stopped even while it waits on a pipe that stays open (here 64 images,
# all consumed, then silence), and the run ends at once.
$PYTHON "$AIM_TOP/tests/ref/train_ref.py" make-stream "$T/small.aimt" --n 64 --grid 4 4 --patch 4 --channels 1 --seed 5
mkfifo "$T/fifo"
(cat "$T/small.aimt"; exec sleep 30) >"$T/fifo" 2>/dev/null &
feeder=$!
start=$(date +%s)
rc=0
timeout 20 "$BIN/aim-train" --dim 16 --depth 1 --heads 1 --head-blocks 1 --batch 16 --steps 4 \
	--threads 1 -q -o "$T/open" <"$T/fifo" || rc=$?
kill $feeder 2>/dev/null || true
[ $rc -eq 0 ] || { echo "aim-train with the pipe left open: exit $rc"; exit 1; }
[ $(( $(date +%s) - start )) -lt 15 ] || { echo "aim-train waited on the open pipe"; exit 1; }
[ -s "$T/open/step-00000004.safetensors" ] || { echo "no final checkpoint"; exit 1; }
