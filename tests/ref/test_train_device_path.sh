#!/bin/sh
# train_step.c's device path (the trunk's twin, the head and the moments in
# backend memory, uploads and syncs) run with the CPU ops through a table
# marked as device memory: loss, gradients, norm, weights, moments,
# evaluation and predictions must equal the CPU path's bit for bit
# (tests/gpu/test_train_gpu.c --self; on a GPU, run.sh runs it on cuda).
set -eu
cd "$AIM_TOP"
BUILD=${BUILD:-build}
mkdir -p "$BUILD/gpu"
CC=${CC:-cc}
[ "${SAN:-0}" = 1 ] && CC="$CC -fsanitize=address,undefined -fno-sanitize-recover=undefined"
$CC -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -fopenmp $(make -s --no-print-directory includes) \
	$(pkg-config --cflags libzstd openblas) -o "$BUILD/gpu/test_train_gpu" tests/gpu/test_train_gpu.c \
	"$BUILD/libaim.a" $(make -s --no-print-directory ldlibs)
OMP_NUM_THREADS=2 "$BUILD/gpu/test_train_gpu" --self
