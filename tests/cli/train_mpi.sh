#!/bin/sh
# Data-parallel training: `mpirun -np 2` with batch B per process ends with
# the same weights (to 1e-5) as one process with batch 2B, gradient
# accumulation on one side included. Rank 0 alone writes the run directory.
set -eu
command -v mpirun >/dev/null 2>&1 || { echo "no mpirun"; exit 77; }
nm "$BIN/aim-train" 2>/dev/null | grep -q MPI_Allreduce || { echo "aim-train built without MPI"; exit 77; }
$PYTHON -c 'import numpy' 2>/dev/null || { echo "no numpy for $PYTHON"; exit 77; }
# Open MPI's own allocations live until exit: LeakSanitizer would report them.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
REF="$AIM_TOP/tests/ref/train_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PYTHON "$REF" make-stream "$T/s.aimt" --n 200 --grid 4 4 --patch 4 --channels 1 --seed 6
C="--dim 32 --depth 2 --heads 2 --head-blocks 1 --steps 12 --lr 3e-3 --seed 3 --threads 1 -q"
mpirun -np 2 --oversubscribe "$BIN/aim-train" $C --batch 6 -o "$T/two" "$T/s.aimt"
"$BIN/aim-train" $C --batch 12 --accum 3 -o "$T/one" "$T/s.aimt"
$PYTHON "$REF" compare "$T/one/step-00000012.safetensors" "$T/two/step-00000012.safetensors" --tol 1e-5
# --device auto under mpirun: each rank tries its own GPU (local rank i,
# GPU i) and, without one, trains on the CPU — the same update
mpirun -np 2 --oversubscribe "$BIN/aim-train" $C --batch 6 --device auto -o "$T/auto" "$T/s.aimt"
$PYTHON "$REF" compare "$T/one/step-00000012.safetensors" "$T/auto/step-00000012.safetensors" --tol 1e-5
# the checkpoint records 2 ranks and every image they consumed
$PYTHON - "$T/two/step-00000012.safetensors" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
st = json.loads(json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])["__metadata__"]["aim.train"])
assert st["world"] == 2 and st["samples"] == 144 and st["step"] == 12, st
PY
# resumed with one process and twice the batch, the run goes on where it was
"$BIN/aim-train" $C --steps 16 --batch 12 --resume "$T/two" "$T/s.aimt"
"$BIN/aim-train" $C --steps 16 --batch 12 --resume "$T/one" "$T/s.aimt"
$PYTHON "$REF" compare "$T/one/step-00000016.safetensors" "$T/two/step-00000016.safetensors" --tol 1e-5
# standard input reaches rank 0 only: refused with a message
if mpirun -np 2 --oversubscribe "$BIN/aim-train" $C --batch 6 -o "$T/stdin" <"$T/s.aimt" 2>"$T/err"; then
	echo "stdin under mpirun accepted"; exit 1
fi
grep -q "name the input files" "$T/err" || { cat "$T/err"; exit 1; }
