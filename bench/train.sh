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
# BENCH_STEPS (default 5) sets the steps of each run; CASES ("vit-s fmnist")
# the shapes.
#
# Where the CPU has native bf16 through oneDNN, a second row per shape:
# aim-train --precision bf16 against aim fp32 and PyTorch's fp32 step of the
# same run. Targets (ViT-S): >= 2.5x PyTorch fp32 and >= 1.7x aim fp32.
#
# Beside the ratio it prints the arithmetic rate of aim-train's step against
# the sgemm ceiling measured in the same run (bench/sgemm_peak.c): the FLOPs
# of a step are 3x the trunk's forward (forward, input and weight
# gradients) plus 3x the pixel head on the rows it runs on (the K/2 rows
# on average whose next patch lies outside the prefix); and the rate that
# 2x PyTorch would take.
set -eu
BUILD=${BUILD:-build}
BIN=${BIN:-$(cd "$BUILD/bin" && pwd)}
AIM_TOP=${AIM_TOP:-$(pwd)}
PYTHON=${PYTHON:-/usr/bin/python3}
REF="$AIM_TOP/tests/ref/train_ref.py"
STEPS=${BENCH_STEPS:-5}
$PYTHON -c 'import torch' 2>/dev/null || { echo "train: SKIP (no torch for $PYTHON)"; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cc -O2 -fopenmp $(pkg-config --cflags openblas) -o "$T/sgemm_peak" "$AIM_TOP/bench/sgemm_peak.c" \
	$(pkg-config --libs openblas) $(make -s -C "$AIM_TOP" ldlibs | grep -o -- '-ldnnl' | sed 's/-ldnnl/-DAIM_HAVE_DNNL=1 -ldnnl/')

flops_per_image() { # K P D depth W head_blocks
	awk -v K=$1 -v P=$2 -v D=$3 -v L=$4 -v W=$5 -v N=$6 'BEGIN {
		trunk = 2*K*P*D + L*(2*K*D*(4*D + 8*D) + 4*K*K*D)
		head = 2*(K/2)*(D*W + N*8*W*W + W*P)
		printf "%.6e", 3*(trunk + head) }'
}

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
	if [ -n "$BF16" ]; then
		"$BIN/aim-train" --preset $preset --batch $batch --steps $STEPS --save-every 0 --threads 2 -q \
			--device cpu --precision bf16 -o "$T/$name-bf16" "$T/$name.aimt"
		bf=$(median_ips "$T/$name-bf16/log.csv")
	fi
	args="--dim $dim --depth $depth --heads $heads --head-blocks $hb --head-dim $hd --patch $patch
		--channels $ch --grid $rows $rows --batch $batch --steps $STEPS --threads 2"
	spin=$($PYTHON "$REF" bench $args)
	sleep=$(OMP_WAIT_POLICY=passive $PYTHON "$REF" bench $args)
	theirs=$($PYTHON -c "print(max($spin, $sleep))")
	peak=$("$T/sgemm_peak" 2 3)
	f=$(flops_per_image $((rows * rows)) $((ch * patch * patch)) $dim $depth $hd $hb)
	echo "train $name: aim-train $ours images/s, PyTorch $theirs images/s (spinning $spin, passive $sleep), ratio $($PYTHON -c "print('%.2f' % ($ours / $theirs))")x"
	awk -v f=$f -v a=$ours -v t=$theirs -v p=$peak -v n=$name 'BEGIN {
		printf "train %s: %.1f GFLOP/image; aim-train %.0f GFLOP/s = %.0f%% of the sgemm peak %.0f; 2x PyTorch would take %.0f GFLOP/s (%.0f%% of it)\n",
			n, f/1e9, a*f/1e9, 100*a*f/1e9/p, p, 2*t*f/1e9, 100*2*t*f/1e9/p }'
	[ -z "$BF16" ] ||
		awk -v b=$bf -v a=$ours -v t=$theirs -v n=$name 'BEGIN {
			printf "train %s bf16: aim-train bf16 %.3f images/s, aim fp32 %.3f: %.2fx; PyTorch fp32 %.3f: %.2fx\n",
				n, b, a, b / a, t, b / t }'
}
BF16=
"$BIN/aim-train" --version | grep -q "bf16 brg:" && BF16=1

for c in ${CASES:-vit-s fmnist}; do
	case $c in
	vit-s) run vit-s vit-s 16 16 14 3 384 12 6 2 384 ;;
	fmnist) run fmnist fmnist 128 4 7 1 192 6 3 1 192 ;;
	esac
done
