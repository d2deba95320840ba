#!/bin/sh
# Resuming is exact: a run whose input ends early (final checkpoint), then
# resumed on the same input (the consumed images skipped), and a run killed
# with SIGKILL at arbitrary moments and resumed each time, both end with
# weights, head and optimiser state bit-identical to an uninterrupted run.
# After every kill the newest checkpoint loads.
set -eu
$PYTHON -c 'import numpy' 2>/dev/null || { echo "no numpy for $PYTHON"; exit 77; }
REF="$AIM_TOP/tests/ref/train_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PYTHON "$REF" make-stream "$T/s.aimt" --n 480 --grid 4 4 --patch 4 --channels 1 --seed 5
$PYTHON "$REF" make-stream "$T/short.aimt" --n 50 --grid 4 4 --patch 4 --channels 1 --seed 5
C="--dim 32 --depth 2 --heads 2 --head-blocks 1 --batch 8 --accum 2 --steps 60 --lr 3e-3 --save-every 7 --threads 1 -q"
"$BIN/aim-train" $C -o "$T/full" "$T/s.aimt"

# 50 images make 6 steps of 8: the run ends early with a checkpoint.
"$BIN/aim-train" $C -o "$T/cut" "$T/short.aimt" 2>"$T/err"
grep -q "input ended after step 6 of 60" "$T/err" || { cat "$T/err"; exit 1; }
[ -f "$T/cut/step-00000006.safetensors" ]
"$BIN/aim-train" $C --resume "$T/cut" "$T/s.aimt"
cmp "$T/full/step-00000060.safetensors" "$T/cut/step-00000060.safetensors"
cmp -s "$T/full/log.csv" "$T/cut/log.csv" ||
	# rows match but for the measured speed
	[ "$(cut -d, -f1-4 "$T/full/log.csv")" = "$(cut -d, -f1-4 "$T/cut/log.csv")" ]

# SIGKILL at arbitrary moments of a slower run, then resume each time.
K="--dim 64 --depth 2 --heads 2 --head-blocks 1 --batch 8 --steps 60 --lr 3e-3 --save-every 3 --threads 1 -q"
"$BIN/aim-train" $K -o "$T/ref" "$T/s.aimt"
"$BIN/aim-train" $K -o "$T/kill" "$T/s.aimt" & pid=$!
for delay in 0.3 0.2 0.4; do
	sleep $delay
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	ls "$T/kill"/step-*.safetensors >/dev/null 2>&1 || { "$BIN/aim-train" $K -o "$T/kill" "$T/s.aimt" & pid=$!; continue; }
	"$BIN/aim-train" $K --resume "$T/kill" "$T/s.aimt" & pid=$!
done
wait $pid
# nothing half-written is left behind
ls -a "$T/kill" | grep -q tmp && { echo "temporary files left:"; ls -a "$T/kill"; exit 1; }
cmp "$T/ref/step-00000060.safetensors" "$T/kill/step-00000060.safetensors"
[ "$(cut -d, -f1-4 "$T/ref/log.csv")" = "$(cut -d, -f1-4 "$T/kill/log.csv")" ] ||
	{ echo "log.csv differs after resuming"; exit 1; }
