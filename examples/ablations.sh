#!/bin/sh
# The AIM paper's ablations (its Tables 3-5) at small scale, from the
# terminal: each variant of aim-train(1) (order, attention, pixel head,
# objective) pretrained for the same time budget on Fashion-MNIST at patch 4
# (28x28 grey, a 7x7 grid of 49 patches), its frozen trunk probed with the
# attentive probe, and one table: variant, pretraining loss (the pixel loss
# of the variant's own objective on 2,000 test images: comparable between
# orders and heads, not between objectives), attentive top-1 on the test
# images, and the paper's figure (AIM-0.6B pretrained and probed on
# ImageNet-1k, attentive top-1 %) beside it.
#
# The causal variant is probed twice: with its causal mask kept
# (aim-extract --mask causal) and bidirectionally.
#
# Environment:
#   MINUTES       pretraining budget of each variant (default 3)
#   STEPS         instead, the same number of optimizer steps for every
#                 variant (fair on a machine shared with other work, where
#                 minutes buy each variant a different amount of compute)
#   PRECISION     pretraining products, fp32 or bf16 (default bf16 where the
#                 CPU has native bf16, as examples/fmnist.sh)
#   IMAGES        use only the first N images of each split (default: all
#                 60,000 / 10,000), for a quick check of the script
#   PROBE_EPOCHS  attentive-probe epochs (default 10)
#   VARIANTS      the variants to run (default: all, in the table's order)
#   OUT           output directory (default ./ablations); THREADS (all cores)
# Leaves in $OUT: one run directory and probe head per variant, table.txt.
# Run again with the same OUT, it skips what is done (a variant whose
# pretraining finished is not retrained, one probed and scored is not
# probed again), so a killed run continues and VARIANTS can grow.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$PWD/ablations}
MINUTES=${MINUTES:-3}
IMAGES=${IMAGES:-}
PROBE_EPOCHS=${PROBE_EPOCHS:-10}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-}
VARIANTS=${VARIANTS:-"raster spiral checkerboard random causal causal-bidir head-none head-transformer masked-50 masked-75"}
"$TOP/scripts/setup.sh" demo
make -C "$TOP" -s -j"$THREADS" >&2
B="$TOP/build/bin"
if [ -z "${PRECISION:-}" ]; then
	PRECISION=fp32
	"$B/aim-train" --version | grep -q "bf16 brg:" && PRECISION=bf16
fi
if [ -n "$STEPS" ]; then budget="--steps $STEPS" what="$STEPS steps"
else budget="--minutes $MINUTES" what="$MINUTES minutes"; fi
mkdir -p "$OUT"
cd "$OUT"
start=$(date +%s)
say() { printf '\n== %s (%ds)\n' "$*" $(( $(date +%s) - start )) >&2; }

data=data${IMAGES:+-$IMAGES}
say "Fashion-MNIST -> ImageFolder PNG trees ($data)"
[ -d "$data/test/9-boot" ] || python3 "$TOP/examples/fmnist-images.py" "$data" ${IMAGES:+"$IMAGES"}

# 28x28 grey, patch 4: a 7x7 grid of 49 patches of 16 values.
P="--channels 1 --size 28 --patch 4 --mean 0.2860 --std 0.3530 --threads $THREADS -q"
say "patches"
"$B/aim-patchify" $P --resize 28 -o train.aimt "$data/train"
"$B/aim-patchify" $P --resize 28 -o test.aimt "$data/test"
# 2,000 test images drawn across the classes (the ImageFolder order is by class)
"$B/aim-patchify" $P --resize 28 --shuffle --seed 3 "$data/test" |
	"$B/aim-tensor" cat -q --count 2000 -o val.aimt

# The variant's aim-train options and the paper's attentive top-1.
options() {
	case $1 in
	raster) echo "" ;;
	spiral) echo "--order spiral" ;;
	checkerboard) echo "--order checkerboard" ;;
	random) echo "--order random" ;;
	causal|causal-bidir) echo "--attention causal" ;;
	head-none) echo "--head none" ;;
	head-transformer) echo "--head transformer" ;;
	masked-50) echo "--objective masked --mask-ratio 0.5" ;;
	masked-75) echo "--objective masked --mask-ratio 0.75" ;;
	*) echo "ablations.sh: unknown variant '$1'" >&2; exit 2 ;;
	esac
}
paper() {
	case $1 in
	raster) echo "77.4 (orders) / 78.2 (heads, objectives)" ;;
	spiral) echo 76.3 ;; checkerboard) echo 76.0 ;; random) echo 75.7 ;;
	causal) echo "- (transfers only with the mask kept)" ;;
	causal-bidir) echo "- (prefix + bidirectional probe is best)" ;;
	head-none) echo 75.4 ;; head-transformer) echo 78.5 ;;
	masked-50) echo 70.3 ;; masked-75) echo 77.8 ;;
	esac
}

# The fmnist demo's small AIM (dim 192, depth 6, 1-block pixel head).
T="--dim 192 --depth 6 --heads 3 --batch 128 --lr 1.5e-3 --save-every 1000000 --threads $THREADS
   --precision $PRECISION -q"
for v in $VARIANTS; do
	opts=$(options "$v")
	run=run-$v
	[ "$v" = causal-bidir ] && run=run-causal
	if [ ! -f "$run/done" ]; then
		say "$v: pretraining for $what in $PRECISION (aim-train $opts)"
		rm -rf "$run"
		head=""
		case $v in head-none) ;; *) head="--head-blocks 1" ;; esac
		"$B/aim-patchify" $P --transform train --scale 0.6,1 --epochs 1000 --shuffle --seed 1 \
			"$data/train" |
			"$B/aim-train" $T $head $opts $budget --val val.aimt -o "$run"
		touch "$run/done"
	fi
	# a rerun continues where the last one stopped: a variant already
	# probed and scored only takes its row in the table
	[ -s "eval-$v.json" ] && [ -s "loss-$v.json" ] && continue
	ckpt=$(ls "$run"/step-*.safetensors | tail -n 1)
	mask=""
	[ "$v" = causal ] && mask="--mask causal"
	say "$v: features and attentive probe ${mask:+(}$mask${mask:+)}"
	"$B/aim-extract" -m "$ckpt" $mask --layers all --batch 256 -q --threads "$THREADS" \
		-o feat-train.aimt train.aimt
	"$B/aim-extract" -m "$ckpt" $mask --layers all --batch 256 -q --threads "$THREADS" \
		-o feat-test.aimt test.aimt
	"$B/aim-probe" --queries 8 --lr 1e-2 --epochs "$PROBE_EPOCHS" --threads "$THREADS" -q \
		-o "head-$v.safetensors" feat-train.aimt
	"$B/aim-eval" --head "head-$v.safetensors" --json feat-test.aimt >"eval-$v.tmp"
	"$B/aim-eval" -m "$ckpt" --pixel-loss --json val.aimt >"loss-$v.json"
	mv "eval-$v.tmp" "eval-$v.json"
	rm -f feat-train.aimt feat-test.aimt
done

say "table"
{
	echo "Fashion-MNIST, patch 4 (49 patches), $what of $PRECISION pretraining per variant," \
		"attentive probe ($PROBE_EPOCHS epochs) on frozen features, ${IMAGES:-all} images per split"
	printf '%-18s %-18s %-16s %s\n' variant "pretraining loss" "attentive top-1" \
		"paper (AIM-0.6B, IN-1k, attentive)"
	for v in $VARIANTS; do
		loss=$(python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["pixel_loss"])' "loss-$v.json")
		top1=$(python3 -c 'import json,sys; print("%.2f %%" % json.load(open(sys.argv[1]))["top1"])' "eval-$v.json")
		printf '%-18s %-18s %-16s %s\n' "$v" "$loss" "$top1" "$(paper "$v")"
	done
	echo "total time: $(( $(date +%s) - start )) s"
} | tee table.txt
