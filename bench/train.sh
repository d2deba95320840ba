#!/bin/sh
# Training speed of aim-train against PyTorch's CPU training step on the
# same model, side by side in one run (tests/ref/train_ref.py bench builds
# the same trunk + pixel head as torch.nn modules with torch.optim.AdamW,
# prefix-causal masks, norm-pix loss, clipping).
#   1. ViT-S/14 (dim 384, depth 12, heads 6, 224 px), 2-block pixel head,
#      batch 16, fp32, 2 threads.
#   2. The Fashion-MNIST demo shape (28 px, patch 7, dim 192, depth 6,
#      1-block head), batch 128, 2 threads.
# Images/s is the median over the steps after the first. aim-train makes
# idle threads sleep (OMP_WAIT_POLICY=passive, OPENBLAS_THREAD_TIMEOUT=4);
# PyTorch runs with its default spinning threads and with passive ones,
# and its better figure counts, so a busy machine does not flatter us.
# BENCH_STEPS (default 5) sets the steps of each run.
set -eu
BUILD=${BUILD:-build}
BIN=${BIN:-$(cd "$BUILD/bin" && pwd)}
AIM_TOP=${AIM_TOP:-$(pwd)}
PYTHON=${PYTHON:-/usr/bin/python3}
REF="$AIM_TOP/tests/ref/train_ref.py"
STEPS=${BENCH_STEPS:-5}
$PYTHON -c 'import torch' 2>/dev/null || { echo "train: SKIP (no torch for $PYTHON)"; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

median_ips() { # log.csv -> median images/s of steps after the first
	$PYTHON -c '
import csv, sys
v = sorted(float(r["images_per_s"]) for r in list(csv.DictReader(open(sys.argv[1])))[1:])
print("%.3f" % v[len(v) // 2])' "$1"
}

run() { # name preset batch grid patch channels dim depth heads hblocks hdim
	name=$1 preset=$2 batch=$3 rows=$4 patch=$5 ch=$6 dim=$7 depth=$8 heads=$9
	shift 9; hb=$1 hd=$2
	$PYTHON "$REF" make-stream "$T/$name.aimt" --n $((batch * STEPS)) --grid $rows $rows \
		--patch $patch --channels $ch --seed 1
	"$BIN/aim-train" --preset $preset --batch $batch --steps $STEPS --save-every 0 --threads 2 -q \
		-o "$T/$name" "$T/$name.aimt"
	ours=$(median_ips "$T/$name/log.csv")
	args="--dim $dim --depth $depth --heads $heads --head-blocks $hb --head-dim $hd --patch $patch
		--channels $ch --grid $rows $rows --batch $batch --steps $STEPS --threads 2"
	spin=$($PYTHON "$REF" bench $args)
	sleep=$(OMP_WAIT_POLICY=passive $PYTHON "$REF" bench $args)
	theirs=$($PYTHON -c "print(max($spin, $sleep))")
	echo "train $name: aim-train $ours images/s, PyTorch $theirs images/s (spinning $spin, passive $sleep), ratio $($PYTHON -c "print('%.2f' % ($ours / $theirs))")x"
}

run vit-s vit-s 16 16 14 3 384 12 6 2 384
run fmnist fmnist 128 4 7 1 192 6 3 1 192
