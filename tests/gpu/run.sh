#!/bin/sh
# The whole GPU suite and the GPU benchmarks in one call, on a machine with
# an NVIDIA GPU and the CUDA toolkit:
#   tests/gpu/run.sh            (from anywhere; env BUILD=build, THREADS)
# 1. make: the tools and build/libaim-cuda.so
# 2. the kernels, the table and the training step under the CPU emulation
#    (tests/gpu/emu_check.sh)
# 3. test_backend_ops: every field of the backend table on the GPU against
#    the CPU backend, and a whole model forward/backward through model.c
# 4. test_train_gpu: a whole training step (trunk, head, loss, clipped
#    AdamW) on cuda against cpu, and the same steps twice on the GPU
#    (bit-identical)
# 5. aim-extract, aim-probe -m, aim-eval --pixel-loss and aim-train with
#    --device cuda against --device cpu; aim-train on the GPU twice and
#    resumed half-way: bit-identical checkpoints
# 6. bench_ops: each op's time on the CPU and on the GPU at model shapes
# 7. benchmarks against PyTorch bf16 autocast + scaled_dot_product_attention
#    (tests/gpu/torch_bench.py, when /usr/bin/python3 has torch with CUDA):
#    aim-extract at the AIM-0.6B shape, bf16, batch $EXTRACT_BATCH (256);
#    aim-train at ViT-S/14 + 2-block head and at the AIM-0.6B shape
#    (batch $TRAIN_BATCH, 64); images/s and model FLOPs utilisation (MFU,
#    against $PEAK_TFLOPS, by default the GPU's dense bf16 peak)
# 8. end to end (tests/gpu/e2e.sh): 50,000 generated JPEGs of ImageNet
#    validation size -> aim-patchify -> aim-eval -m with an AIM-0.6B-shape
#    trunk and head on the GPU, bf16 (target <= 120 s with 16 cores);
#    mpirun -np 2 on two GPUs against one GPU with twice the batch (in 5)
# Prints the figures; exits 0 when everything passed, 77 when there is no
# usable GPU (after the emulation check), 1 on any failure.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
BIN=$BUILD/bin
out=$BUILD/gpu
mkdir -p "$out"
fail=0
step() { printf '\n== %s\n' "$*"; }

step "build"
make -s >/dev/null || { echo "run.sh: make failed"; exit 1; }
[ -f "$BUILD/libaim-cuda.so" ] || { echo "run.sh: no $BUILD/libaim-cuda.so (is nvcc on PATH or at /usr/local/cuda/bin?)"; exit 1; }
AIM_CUDA_LIB=$(cd "$BUILD" && pwd)/libaim-cuda.so
export AIM_CUDA_LIB
CFLAGS="-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -fopenmp $(make -s --no-print-directory includes) $(pkg-config --cflags libzstd openblas)"
LIBS="$BUILD/libaim.a $(make -s --no-print-directory ldlibs)"
for t in test_backend_ops test_train_gpu bench_ops; do
	cc $CFLAGS -o "$out/$t" "tests/gpu/$t.c" $LIBS || { echo "run.sh: $t does not compile"; exit 1; }
done
echo "built $AIM_CUDA_LIB and $out/{test_backend_ops,test_train_gpu,bench_ops}"
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
[ -n "$nvcc" ] && "$nvcc" --version | tail -1
command -v nvidia-smi >/dev/null 2>&1 &&
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null

step "kernels under CPU emulation"
if tests/gpu/emu_check.sh; then :; else echo "FAIL emulation check"; fail=1; fi

step "ops on the GPU against the CPU"
"$out/test_backend_ops"
rc=$?
if [ $rc = 77 ]; then
	# No usable device. When the driver does list a GPU, that is a
	# failure (driver older than the toolkit that built the library,
	# missing cuBLAS, an architecture without code), not a skip.
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
		nvidia-smi -L
		echo "FAIL: a GPU is present but the CUDA backend cannot use it (reason above)"
		exit 1
	fi
	[ $fail = 0 ] && exit 77
	exit 1
fi
[ $rc = 0 ] || fail=1

step "a training step on cuda against cpu; twice on the GPU"
"$out/test_train_gpu" || fail=1

PY=/usr/bin/python3
REF=tests/ref/train_ref.py
X=$BIN/aim-extract
T=$out/cli
rm -rf "$T"; mkdir -p "$T"
step "the tools with --device cuda against --device cpu"
m=tests/data/model/tiny
"$X" -q --device cpu --threads "$THREADS" -m "$m/model.safetensors" --layers all --stack \
	"$m/patches.aimt" -o "$T/feat_cpu.aimt" || fail=1
if AIM_CUDA_SYNC=1 "$X" -v --device cuda -m "$m/model.safetensors" --layers all --stack \
	"$m/patches.aimt" -o "$T/feat_cuda.aimt" 2>"$T/extract_cuda.log"; then
	grep -E "backend|forward" "$T/extract_cuda.log"
	"$out/bench_ops" --compare-streams "$T/feat_cpu.aimt" "$T/feat_cuda.aimt" 1e-4 || fail=1
else
	cat "$T/extract_cuda.log"; echo "FAIL aim-extract --device cuda"; fail=1
fi
"$X" -q --device cuda --precision bf16 -m "$m/model.safetensors" --layers all \
	"$m/patches.aimt" -o "$T/feat_bf16.aimt" || { echo "FAIL aim-extract --precision bf16"; fail=1; }
# aim-probe -m and aim-eval -m: the trunk on the GPU, the probe on the CPU;
# one batch of every image, so the heads (and their logits) must agree
for d in cpu cuda; do
	"$BIN/aim-probe" -q --device $d -m "$m/model.safetensors" --epochs 4 --batch 64 --lr 1e-2 \
		-o "$T/probe_$d.safetensors" "$m/patches.aimt" || { echo "FAIL aim-probe --device $d"; fail=1; }
	"$BIN/aim-eval" -q --device $d -m "$m/model.safetensors" --head "$T/probe_$d.safetensors" \
		--logits-out "$T/logits_$d.aimt" "$m/patches.aimt" >"$T/eval_m_$d.txt" ||
		{ echo "FAIL aim-eval -m --device $d"; fail=1; }
done
"$out/bench_ops" --compare-streams "$T/logits_cpu.aimt" "$T/logits_cuda.aimt" 1e-3 ||
	{ echo "FAIL aim-probe/aim-eval -m: cuda logits differ from cpu"; fail=1; }
if $PY -c 'import numpy' 2>/dev/null; then
	$PY $REF make-stream "$T/s.aimt" --n 96 --grid 4 4 --patch 4 --channels 3 --seed 3
	C="--dim 96 --depth 2 --heads 2 --head-blocks 1 --batch 16 --accum 2 --lr 3e-3 --save-every 3 --threads $THREADS -q"
	"$BIN/aim-train" $C --steps 6 --device cpu -o "$T/tcpu" "$T/s.aimt" || fail=1
	for r in tg1 tg2; do
		"$BIN/aim-train" $C --steps 6 --device cuda -o "$T/$r" "$T/s.aimt" || fail=1
	done
	# the first 48 images make 3 steps: the input ends, then resume on all
	$PY $REF make-stream "$T/short.aimt" --n 48 --grid 4 4 --patch 4 --channels 3 --seed 3
	"$BIN/aim-train" $C --steps 6 --device cuda -o "$T/tres" "$T/short.aimt" 2>/dev/null || fail=1
	"$BIN/aim-train" $C --steps 6 --device cuda --resume "$T/tres" "$T/s.aimt" || fail=1
	for f in step-00000003 step-00000006; do
		cmp "$T/tg1/$f.safetensors" "$T/tg2/$f.safetensors" ||
			{ echo "FAIL aim-train --device cuda twice: $f differs"; fail=1; }
	done
	cmp "$T/tg1/step-00000006.safetensors" "$T/tres/step-00000006.safetensors" ||
		{ echo "FAIL aim-train --device cuda resumed: step 6 differs"; fail=1; }
	# several GPUs: mpirun -np 2 with batch 8 each (NCCL within the
	# machine) makes the update of one GPU with batch 16
	ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
	if [ "${ngpu:-0}" -ge 2 ] && command -v mpirun >/dev/null 2>&1 &&
		nm "$BIN/aim-train" 2>/dev/null | grep -q MPI_Allreduce; then
		OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
			mpirun -np 2 --oversubscribe "$BIN/aim-train" $(echo "$C" | sed 's/--batch 16 --accum 2/--batch 8/') \
			--steps 6 --device cuda -o "$T/tmulti" "$T/s.aimt" 2>"$T/multi.log" || { cat "$T/multi.log"; fail=1; }
		grep -h "gradients summed" "$T/multi.log" || true
		$PY $REF compare "$T/tg1/step-00000006.safetensors" "$T/tmulti/step-00000006.safetensors" --tol 1e-4 ||
			{ echo "FAIL aim-train on 2 GPUs differs from 1 GPU with twice the batch"; fail=1; }
	else
		echo "(fewer than 2 GPUs, or no MPI: the multi-GPU run is skipped)"
	fi
	printf 'aim-train 6 steps, loss cpu %s, cuda %s\n' "$(tail -1 "$T/tcpu/log.csv" | cut -d, -f2)" \
		"$(tail -1 "$T/tg1/log.csv" | cut -d, -f2)"
	# the validation loss of the GPU checkpoint, on both devices
	for d in cpu cuda; do
		"$BIN/aim-eval" --device $d --pixel-loss -m "$T/tg1/step-00000006.safetensors" \
			--json "$T/s.aimt" >"$T/eval_$d.json" || fail=1
	done
	$PY - "$T/eval_cpu.json" "$T/eval_cuda.json" <<'PYEOF' || fail=1
import json, sys
a, b = (json.load(open(p))["pixel_loss"] for p in sys.argv[1:3])
print("aim-eval --pixel-loss cpu %.6f cuda %.6f" % (a, b))
sys.exit(0 if abs(a - b) <= 1e-4 * max(1.0, abs(a)) else 1)
PYEOF
else
	echo "(no numpy at $PY: the aim-train / aim-eval device runs are skipped)"
fi

step "op benchmarks (CPU with $THREADS threads vs GPU)"
OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS "$out/bench_ops" || fail=1

step "benchmarks against PyTorch (bf16)"
if $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
	name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
	case "$name" in # dense bf16 tensor-core peaks, TFLOP/s
	*H100*PCIe*) peak=756 ;; *H100*|*H200*|*GH200*) peak=989 ;; *A100*) peak=312 ;;
	*L40S*) peak=362 ;; *A10*) peak=125 ;; *) peak=0 ;;
	esac
	PEAK_TFLOPS=${PEAK_TFLOPS:-$peak}
	EXTRACT_BATCH=${EXTRACT_BATCH:-256}
	TRAIN_BATCH=${TRAIN_BATCH:-64}
	echo "GPU: $name; MFU against $PEAK_TFLOPS TFLOP/s dense bf16 (PEAK_TFLOPS)"
	# model FLOPs of one image, as torch_bench.py counts them (2 per
	# multiply-add, attention included; training: 3 x forward, head on all
	# 256 positions)
	flops() { # dim depth [head_dim head_blocks]
		awk -v D=$1 -v L=$2 -v W=${3:-0} -v N=${4:-0} 'BEGIN{K=256; P=588;
			f = 2*K*P*D + L*(2*K*12*D*D + 4*K*K*D);
			if (W > 0) f = 3*(f + 2*K*(D*W + N*8*W*W + W*P));
			printf "%.6e", f }'
	}
	report() { # what images/s flops/image
		awk -v w="$1" -v ips="$2" -v f="$3" -v p="$PEAK_TFLOPS" 'BEGIN{
			t = ips*f/1e12; printf "%-44s %9.1f images/s %7.1f TFLOP/s", w, ips, t;
			if (p > 0) printf "  MFU %4.1f%%", 100*t/p; printf "\n" }'
	}
	B=$T/bench
	mkdir -p "$B"
	# aim-extract, AIM-0.6B shape, bf16, large batch
	$PY bench/extract_ref.py gen "$B/m06" --dim 1536 --depth 24 --heads 12 --images "$EXTRACT_BATCH" >/dev/null &&
	if "$X" -v --device cuda --precision bf16 --batch "$EXTRACT_BATCH" -m "$B/m06/model.safetensors" \
		--layers 23 "$B/m06/patches.aimt" -o /dev/null 2>"$B/x.log"; then
		ips=$(sed -n 's/.*forward: [0-9.]* s, \([0-9.]*\) images\/s.*/\1/p' "$B/x.log")
		report "aim-extract AIM-0.6B bf16 batch $EXTRACT_BATCH" "$ips" "$(flops 1536 24)"
	else
		cat "$B/x.log"; fail=1
	fi
	out_t=$($PY tests/gpu/torch_bench.py extract --dim 1536 --depth 24 --heads 12 --batch "$EXTRACT_BATCH") &&
		report "PyTorch AIM-0.6B bf16 autocast+SDPA" "$(echo "$out_t" | awk '{print $2}')" "$(flops 1536 24)"
	rm -rf "$B/m06"
	# aim-train: ViT-S/14 + 2-block head, and the AIM-0.6B shape (12-block
	# head of width 2048), synthetic 224 px images
	$PY $REF make-stream "$B/img.aimt" --n $((TRAIN_BATCH * 8)) --grid 16 16 --patch 14 --channels 3 --seed 1
	for shape in "vit-s 384 12 6 384 2" "aim-600M 1536 24 12 2048 12"; do
		set -- $shape
		if "$BIN/aim-train" --preset "$1" --device cuda --precision bf16 --batch "$TRAIN_BATCH" --steps 8 \
			--save-every 1000 -o "$B/run_$1" "$B/img.aimt" 2>"$B/t.log"; then
			# log.csv: step,loss,lr,grad_norm,images_per_s,val_loss; the
			# first steps warm up
			ips=$(awk -F, 'NR>4 {s+=$5; n++} END{if (n) printf "%.2f", s/n}' "$B/run_$1/log.csv")
			report "aim-train $1 bf16 batch $TRAIN_BATCH" "$ips" "$(flops $2 $3 $5 $6)"
		else
			cat "$B/t.log"; fail=1
		fi
		out_t=$($PY tests/gpu/torch_bench.py train --dim $2 --depth $3 --heads $4 --head-dim $5 \
			--head-blocks $6 --batch "$TRAIN_BATCH") &&
			report "PyTorch $1 train bf16 autocast+SDPA" "$(echo "$out_t" | awk '{print $2}')" "$(flops $2 $3 $5 $6)"
		rm -rf "$B/run_$1"
	done
	rm -rf "$B"
else
	echo "(no PyTorch with CUDA at $PY: the benchmarks against PyTorch are skipped)"
fi

step "end to end: JPEGs -> aim-patchify -> aim-eval -m on the GPU"
THREADS=$THREADS PY=$PY BUILD=$BUILD sh tests/gpu/e2e.sh || fail=1

step "result"
if [ $fail = 0 ]; then echo "GPU suite: all passed"; else echo "GPU suite: FAILED"; fi
exit $fail
