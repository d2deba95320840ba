/* Row softmax, forward and backward (ops_softmax.c): one warp per row,
 * warp-shuffle reductions for the maximum and the sums. */
#include <math.h>

#include "cuda/cuda_util.cuh"
#include "cuda/ops_cuda.cuh"

#define SM_WARPS 4 /* rows per block */

/* y may alias x: the last pass reads and writes each element in the same
 * thread, after the reductions have read the whole row. */
__global__ void softmax_fwd_kernel(float *y, const float *x, int M, int N)
{
	int row = blockIdx.x * SM_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
	if (row >= M) /* the whole warp leaves together */
		return;
	const float *xr = x + (size_t)row * N;
	float *yr = y + (size_t)row * N;
	float mx = -INFINITY;
	for (int j = lane; j < N; j += 32)
		mx = fmaxf(mx, xr[j]);
	mx = aim_warp_max(mx);
	float s = 0.0f;
	for (int j = lane; j < N; j += 32)
		s += expf(xr[j] - mx);
	s = aim_warp_sum(s);
	float inv = 1.0f / s;
	for (int j = lane; j < N; j += 32)
		yr[j] = expf(xr[j] - mx) * inv;
}

void cuda_softmax_fwd(float *y, const float *x, int M, int N)
{
	if (M <= 0 || N <= 0)
		return;
	AIM_LAUNCH(softmax_fwd_kernel, (unsigned)((M + SM_WARPS - 1) / SM_WARPS), 32 * SM_WARPS, 0,
		   y, x, M, N);
	aim_cuda_launched("softmax_fwd");
}

/* dx += y ⊙ (dy − Σ dy⊙y) */
__global__ void softmax_bwd_kernel(float *dx, const float *dy, const float *y, int M, int N)
{
	int row = blockIdx.x * SM_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
	if (row >= M)
		return;
	size_t o = (size_t)row * N;
	float s = 0.0f;
	for (int j = lane; j < N; j += 32)
		s += dy[o + j] * y[o + j];
	s = aim_warp_sum(s);
	for (int j = lane; j < N; j += 32)
		dx[o + j] += y[o + j] * (dy[o + j] - s);
}

void cuda_softmax_bwd(float *dx, const float *dy, const float *y, int M, int N)
{
	if (M <= 0 || N <= 0)
		return;
	AIM_LAUNCH(softmax_bwd_kernel, (unsigned)((M + SM_WARPS - 1) / SM_WARPS), 32 * SM_WARPS, 0,
		   dx, dy, y, M, N);
	aim_cuda_launched("softmax_bwd");
}
