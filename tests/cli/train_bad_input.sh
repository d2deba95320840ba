#!/bin/sh
# Input aim-train cannot take is an error (exit 1, one line naming the
# problem) before any step runs: patches that do not fit the preset or the
# --init model, no images, a stream that is not of patches, a geometry
# change mid-stream, nothing to resume, an --arch the weights are not of.
set -u
$PYTHON -c 'import numpy' 2>/dev/null || { echo "no numpy for $PYTHON"; exit 77; }
REF="$AIM_TOP/tests/ref/train_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PYTHON "$REF" make-stream "$T/g44.aimt" --n 8 --grid 4 4 --patch 4 --channels 1 || exit 1
$PYTHON "$REF" make-stream "$T/g34.aimt" --n 8 --grid 3 4 --patch 4 --channels 1 || exit 1
$PYTHON "$REF" make-stream "$T/rgb.aimt" --n 8 --grid 4 4 --patch 4 --channels 3 || exit 1
C="--dim 16 --depth 1 --heads 2 --batch 4 --threads 1 -q"
"$BIN/aim-train" $C --steps 1 -o "$T/m" "$T/g44.aimt" || exit 1
fails=0

expect() { # expect PATTERN RUNDIR command...: exit 1, message, no step run
	pat=$1; dir=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"; rc=$?
	if [ $rc -ne 1 ] || ! grep -q "$pat" "$T/err" || [ "$(wc -l <"$T/err")" -ne 1 ] ||
	   ls "$dir"/step-*.safetensors >/dev/null 2>&1; then
		echo "FAILED (exit $rc): $*"; cat "$T/err"; fails=$((fails + 1))
	fi
}

expect "preset fmnist takes 1-channel 7x7 patches" "$T/r1" \
	"$BIN/aim-train" --preset fmnist --threads 1 -o "$T/r1" "$T/g44.aimt"
expect "grid" "$T/r2" "$BIN/aim-train" --init "$T/m/step-00000001.safetensors" -q -o "$T/r2" "$T/g34.aimt"
expect "3-channel" "$T/r3" "$BIN/aim-train" --init "$T/m/step-00000001.safetensors" -q -o "$T/r3" "$T/rgb.aimt"
expect "no images" "$T/r4" "$BIN/aim-train" $C -o "$T/r4" /dev/null
expect "no checkpoint" "$T/r5" sh -c "mkdir -p '$T/r5' && '$BIN/aim-train' $C --resume '$T/r5' '$T/g44.aimt'"
cat "$T/g44.aimt" "$T/g34.aimt" >"$T/mixed.aimt"
"$BIN/aim-train" $C --steps 10 -o "$T/r6" "$T/mixed.aimt" 2>"$T/err"
[ $? -eq 1 ] && grep -q "geometry changed" "$T/err" || { echo "mixed geometry accepted"; cat "$T/err"; fails=$((fails + 1)); }
"$BIN/aim-train" $C --steps 1 -o "$T/r7" "$T/m/step-00000001.safetensors" 2>"$T/err"
[ $? -eq 1 ] && grep -q "patches" "$T/err" || { echo "a model file taken as patches"; cat "$T/err"; fails=$((fails + 1)); }
expect "an aim-v1 trunk, not --arch aimv2" "$T/r9" "$BIN/aim-train" --arch aimv2 \
	--init "$T/m/step-00000001.safetensors" -q -o "$T/r9" "$T/g44.aimt"
"$BIN/aim-train" $C --arch aimv3 -o "$T/r10" "$T/g44.aimt" 2>"$T/err"
[ $? -eq 2 ] && grep -q "arch.*aimv3" "$T/err" || { echo "--arch aimv3 accepted"; cat "$T/err"; fails=$((fails + 1)); }
# an AIMv2 run resumes as one; its checkpoint is a model aim-extract loads
"$BIN/aim-train" $C --arch aimv2 --steps 1 -o "$T/v2" "$T/g44.aimt" &&
"$BIN/aim-train" $C --steps 2 --resume "$T/v2" "$T/g44.aimt" &&
"$BIN/aim-extract" -q -m "$T/v2/step-00000002.safetensors" --norm "$T/g44.aimt" -o "$T/v2.aimt" ||
	{ echo "aimv2 run, resume, extract failed"; fails=$((fails + 1)); }
"$BIN/aim-train" $C --arch aim-v1 --steps 3 --resume "$T/v2" "$T/g44.aimt" 2>"$T/err"
[ $? -eq 1 ] && grep -q "an aimv2 trunk, not --arch aim-v1" "$T/err" && [ ! -e "$T/v2/step-00000003.safetensors" ] ||
	{ echo "--arch aim-v1 resumed an aimv2 run"; cat "$T/err"; fails=$((fails + 1)); }
# --init from a run's checkpoint takes its trunk and pixel head and trains on
"$BIN/aim-train" --init "$T/m/step-00000001.safetensors" --batch 4 --steps 2 --threads 1 -q \
	-o "$T/r8" "$T/g44.aimt" || { echo "--init failed"; fails=$((fails + 1)); }
[ $fails -eq 0 ]
