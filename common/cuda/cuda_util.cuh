/* Shared machinery of the CUDA backend: status checks that abort, the one
 * stream every op runs on, scratch buffers, launch and reduction helpers.
 *
 * Every op file includes this header only (plus ops_cuda.cuh). With
 * AIM_CUDA_EMULATE defined the same op sources compile with g++ against a
 * CPU emulation of the few CUDA features they use (emu.cuh), so that the
 * kernels' index arithmetic, masking and reductions are tested on machines
 * without a GPU (tests/gpu/emu_check.sh). */
#ifndef AIM_CUDA_UTIL_CUH
#define AIM_CUDA_UTIL_CUH

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef AIM_CUDA_EMULATE
#include "cuda/emu.cuh"
#define AIM_LAUNCH(kernel, grid, block, smem, ...) \
	aim_emu_launch((grid), (block), (smem), [&] { kernel(__VA_ARGS__); })
#define AIM_DYN_SMEM(type, name) type *name = (type *)aim_emu_dyn_smem
#else
#include <cuda_runtime.h>
#define AIM_LAUNCH(kernel, grid, block, smem, ...) \
	kernel<<<(grid), (block), (smem), aim_cuda_stream()>>>(__VA_ARGS__)
/* One untyped dynamic shared array for every kernel (kernels with
 * different element types may not redeclare it with another type). */
#define AIM_DYN_SMEM(type, name)                                         \
	extern __shared__ __align__(16) unsigned char aim_dyn_smem_[];  \
	type *name = (type *)aim_dyn_smem_
#endif

/* A failed CUDA call mid-run cannot be recovered from (the model's state
 * lives on the device): print one line naming the op and abort. */
[[noreturn]] void aim_cuda_fail(const char *op, const char *call, const char *why);

#define AIM_CUDA_CHECK(op, call)                                              \
	do {                                                                  \
		cudaError_t aim_e_ = (call);                                  \
		if (aim_e_ != cudaSuccess)                                    \
			aim_cuda_fail((op), #call, cudaGetErrorString(aim_e_)); \
	} while (0)

/* After a launch: configuration errors show at once; execution errors at
 * the next synchronising call, or right here with AIM_CUDA_SYNC=1. */
void aim_cuda_launched(const char *op);

/* The stream every op and copy of this backend is ordered on. */
cudaStream_t aim_cuda_stream(void);

/* Device scratch for one purpose (slot), grown on demand and kept. Ops
 * run in stream order, so a slot may be reused by the next call. */
enum {
	AIM_SCRATCH_PREFIX,    /* attention prefix lengths (int) */
	AIM_SCRATCH_ROWS,      /* loss / gather row indices (int) */
	AIM_SCRATCH_ATT_DELTA, /* attention backward: rowsum(dO ⊙ O) */
	AIM_SCRATCH_LN,        /* layernorm / rmsnorm backward: dw, db partials */
	AIM_SCRATCH_LOSS,      /* pixel loss per patch (double) */
	AIM_SCRATCH_REDUCE,    /* sums of squares partials (double) */
	AIM_SCRATCH_ONES,      /* linear backward: ones[M] for the bias sum */
	AIM_SCRATCH_SLOTS
};
void *aim_cuda_scratch(int slot, size_t bytes);

/* n ints for a kernel (prefix lengths, row indices): the caller's array
 * may be host memory (the model keeps them there) or device memory; either
 * way the result is a device pointer valid for the ops queued next. slot:
 * AIM_SCRATCH_PREFIX or AIM_SCRATCH_ROWS; each remembers its last upload,
 * so the same host array passed to every layer is copied once. */
const int *aim_cuda_ints(int slot, const int *p, long n);

/* Blocking copy of device memory to the host, ordered after queued ops. */
void aim_cuda_fetch(void *host, const void *dev, size_t bytes, const char *op);

/* Blocks for a grid-stride loop over n elements. */
static inline unsigned aim_cuda_blocks(size_t n, unsigned threads)
{
	size_t b = (n + threads - 1) / threads;
	return (unsigned)(b < 4096 ? (b ? b : 1) : 4096);
}

/* ---- device helpers ------------------------------------------------------ */

__device__ __forceinline__ int aim_imin(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ int aim_imax(int a, int b) { return a > b ? a : b; }

template <typename T> __device__ __forceinline__ T aim_warp_sum(T v)
{
	for (int off = 16; off > 0; off >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, off);
	return v;
}

__device__ __forceinline__ float aim_warp_max(float v)
{
	for (int off = 16; off > 0; off >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
	return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); the
 * result is valid in thread 0. red: __shared__ T[32]. Every thread of the
 * block must call it. */
template <typename T> __device__ __forceinline__ T aim_block_sum(T v, T *red)
{
	const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
	v = aim_warp_sum(v);
	if (lane == 0)
		red[w] = v;
	__syncthreads();
	if (w == 0) {
		v = lane < (int)(blockDim.x / 32) ? red[lane] : (T)0;
		v = aim_warp_sum(v);
	}
	return v;
}

#endif
