#!/bin/sh
# Build the CUDA backend's kernels for the CPU emulation (common/cuda/emu.cuh)
# and check them against the CPU ops. Runs anywhere g++ 11+ is; no GPU.
#   tests/gpu/emu_check.sh        (after `make`, which builds build/libaim.a)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
out=$BUILD/gpu
mkdir -p "$out"
[ -f "$BUILD/libaim.a" ] || make "$BUILD/libaim.a" >/dev/null
CXX=${CXX:-g++}
AIM_INC=$(make -s --no-print-directory includes)
# Under `make check SAN=1` the library is instrumented: so must the test be.
[ "${SAN:-0}" = 1 ] && CXX="$CXX -fsanitize=address,undefined -fno-sanitize-recover=undefined"
srcs="add gelu swiglu softmax layernorm rmsnorm linear attention pixloss adamw table_ops"
objs=
for s in $srcs; do
	$CXX -std=c++20 -O1 -g -Wall -Wextra -Wno-unknown-pragmas -DAIM_CUDA_EMULATE $AIM_INC -pthread -fopenmp \
		-x c++ -c "common/cuda/$s.cu" -o "$out/emu_$s.o"
	objs="$objs $out/emu_$s.o"
done
$CXX -std=c++20 -O1 -g -Wall -Wextra -Wno-unknown-pragmas -DAIM_CUDA_EMULATE $AIM_INC -pthread -fopenmp \
	tests/gpu/emu_ops.cc $objs "$BUILD/libaim.a" -o "$out/emu_ops" $(make -s --no-print-directory ldlibs)
OMP_NUM_THREADS=1 "$out/emu_ops"
