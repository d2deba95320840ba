#!/bin/sh
# aim-train's defaults give, bit for bit, the checkpoints of the code before
# the ablation options (--order, --attention, --objective, --head) existed.
# The expected digests below were produced by aim-train built from main at
# commit fbae965 (before those options), on the platform named beside them:
# float results depend on OpenBLAS's kernel and on the vector clones the CPU
# picks, so on another platform the digests are not comparable and the test
# is skipped (naming both platforms). Everywhere, the defaults spelled out
# give the same bits as the defaults left implicit.
#
# A digest covers every tensor of the final checkpoint (trunk, pixel head,
# AdamW moments, as aim-tensor to-npy writes them) and the loss, gradient
# norm and validation loss of every logged step.
# The digests were recorded with OpenBLAS as the fp32 GEMM (gemm.h).
export AIM_SGEMM=openblas
$PYTHON -c 'import numpy' 2>/dev/null || { echo "no numpy for $PYTHON"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
REF="$AIM_TOP/tests/ref/train_ref.py"
$PYTHON "$REF" make-stream "$T/g.aimt" --n 24 --grid 4 4 --patch 4 --channels 1 --seed 1
$PYTHON "$REF" make-stream "$T/v.aimt" --n 5 --grid 4 4 --patch 4 --channels 1 --seed 2
$PYTHON "$REF" make-stream "$T/c.aimt" --n 20 --grid 3 4 --patch 2 --channels 3 --seed 3

digest() { # RUNDIR STEP: one line for the checkpoint and the log
	mkdir "$1/npy"
	"$BIN/aim-tensor" to-npy -q -o "$1/npy" "$1/step-$2.safetensors"
	{ (cd "$1/npy" && sha256sum -- *); cut -d, -f1-4,6 "$1/log.csv"; } | sha256sum | cut -c1-64
}
# Square grey grid, micro-batches, validation at every step.
A="--dim 32 --depth 2 --heads 2 --head-blocks 1 --head-dim 24 --batch 6 --accum 2 --steps 3
   --lr 1e-3 --seed 7 --val $T/v.aimt --val-every 1 --threads 1 -q"
# Non-square RGB grid, raw pixels, no clipping, two head blocks, resumed.
B="--dim 24 --depth 3 --heads 3 --mlp-ratio 2 --head-blocks 2 --head-dim 20 --batch 5
   --lr 2e-3 --warmup 1 --seed 11 --no-norm-pix --clip 0 --save-every 2 --threads 1 -q"
run_all() { # SUFFIX EXTRA-OPTIONS
	"$BIN/aim-train" $A $2 -o "$T/a$1" "$T/g.aimt"
	"$BIN/aim-train" $B $2 --steps 2 -o "$T/b$1" "$T/c.aimt"
	"$BIN/aim-train" $B $2 --steps 4 --resume "$T/b$1" "$T/c.aimt"
	echo "$(digest "$T/a$1" 00000003) $(digest "$T/b$1" 00000004)"
}
got=$(run_all 0 "")

# Explicit defaults: the same bits on any platform.
if "$BIN/aim-train" --help | grep -q -- "--order"; then
	explicit=$(run_all 1 "--order raster --attention prefix --objective autoregressive --head mlp")
	[ "$explicit" = "$got" ] || { echo "explicit defaults differ: $explicit vs $got"; exit 1; }
fi

# The digests are of the plain build; the sanitizers' build computes
# otherwise (other optimisation), so it checks only the above.
if [ "${SAN:-0}" = 1 ]; then
	echo "digests are of the plain build, not of SAN=1"
	exit 77
fi
platform=$("$BIN/aim-train" -v --threads 1 --dim 32 --depth 1 --heads 2 --steps 0 \
	-o "$T/p" "$T/g.aimt" 2>&1 | sed -n 's/.*OpenBLAS \([^,]*\) MAX_THREADS.*/\1/p')
platform="$platform / $(grep -o -w 'avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
recorded="0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Prescott / avx2 avx512f "
expected="d270cbd75a575f3d863d9c4ab887da9662e3eb6849c21d449a6b8ca777e93dad 2aae9d56f07da88a6d51cb4b8ffb96121b74c07eb772508ddfc697af12973501"
if [ "$platform" != "$recorded" ]; then
	echo "digests recorded on '$recorded', this platform is '$platform'"
	exit 77
fi
echo "got      $got"
echo "expected $expected"
[ "$got" = "$expected" ]
