#!/bin/sh
# The CPU's fp32 GEMM library (common/ops/gemm.h): oneDNN when the build
# has it, OpenBLAS with AIM_SGEMM=openblas; --version names it, a bad value
# is a warning that names the library used instead. A training run and the
# features of its checkpoint agree between the two libraries to fp32
# rounding, and each library resumes to its own bits.
set -eu
$PYTHON -c 'import numpy' 2>/dev/null || { echo "no numpy for $PYTHON"; exit 77; }
REF="$AIM_TOP/tests/ref/train_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

AIM_SGEMM=openblas "$BIN/aim-extract" --version | grep -q "fp32 GEMM OpenBLAS" ||
	fail "AIM_SGEMM=openblas: --version does not say OpenBLAS"
AIM_SGEMM=mkl "$BIN/aim-extract" --version >/dev/null 2>"$T/err"
grep -q "^aim: AIM_SGEMM=mkl: not openblas or onednn; using " "$T/err" ||
	fail "AIM_SGEMM=mkl: $(cat "$T/err")"
if "$BIN/aim-extract" --version | grep -q "fp32 GEMM oneDNN"; then
	libs="onednn openblas"
else
	libs=openblas
	AIM_SGEMM=onednn "$BIN/aim-extract" --version >/dev/null 2>"$T/err"
	grep -q "this build has no oneDNN" "$T/err" || fail "AIM_SGEMM=onednn without oneDNN"
fi

$PYTHON "$REF" make-stream "$T/s.aimt" --n 64 --grid 8 8 --patch 4 --channels 3 --seed 4
C="--dim 64 --depth 2 --heads 2 --head-blocks 1 --batch 8 --steps 6 --lr 3e-3 --threads 2 -q"
for lib in $libs; do
	AIM_SGEMM=$lib "$BIN/aim-train" $C --save-every 3 -o "$T/$lib" "$T/s.aimt"
	# resumed from the step-3 checkpoint: the same bits on two threads
	cp -r "$T/$lib" "$T/$lib-half"
	rm "$T/$lib-half/step-00000006.safetensors"
	AIM_SGEMM=$lib "$BIN/aim-train" $C --save-every 3 --resume "$T/$lib-half" "$T/s.aimt"
	cmp "$T/$lib/step-00000006.safetensors" "$T/$lib-half/step-00000006.safetensors" ||
		fail "$lib: resumed run differs"
	# both libraries extract with one model, the first library's
	[ -f "$T/model.safetensors" ] || cp "$T/$lib/step-00000006.safetensors" "$T/model.safetensors"
	AIM_SGEMM=$lib "$BIN/aim-extract" -q -m "$T/model.safetensors" --layers all \
		--threads 2 -o "$T/$lib.aimt" "$T/s.aimt"
	mkdir "$T/$lib-npy"
	"$BIN/aim-tensor" to-npy -q -o "$T/$lib-npy" "$T/$lib.aimt"
done
[ "$libs" = openblas ] && exit 0
$PYTHON - "$T" <<'PY'
import glob, os, sys
import numpy as np
T = sys.argv[1]
for f in sorted(glob.glob(os.path.join(T, "openblas-npy", "*.npy"))):
    a = np.load(f).astype(np.float64)
    b = np.load(os.path.join(T, "onednn-npy", os.path.basename(f))).astype(np.float64)
    if not np.issubdtype(a.dtype, np.floating):
        assert (a == b).all(), f
        continue
    err = np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)
    print("%s: max |oneDNN - OpenBLAS| / max|x| = %.2e" % (os.path.basename(f), err))
    assert err <= 1e-5, f
PY
