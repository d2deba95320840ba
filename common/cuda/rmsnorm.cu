/* RMSNorm over the last dimension, forward and backward (ops_rmsnorm.c).
 *
 * As layernorm.cu: one warp per row for the forward and the input
 * gradient; the weight gradient is a column sum over all M rows, formed
 * as partials over fixed chunks of rows and added in a fixed order, so
 * every run gives the same result (no atomics). */
#include <math.h>

#include "cuda/cuda_util.cuh"
#include "cuda/ops_cuda.cuh"

#define RMS_WARPS 4        /* rows per block in the row kernels */
#define RMS_COLS 256       /* columns per block in the partial sums */
#define RMS_MAX_CHUNKS 256 /* row chunks of the partial sums */

/* y may alias x: every element is read before the row is written. */
__global__ void rmsnorm_fwd_kernel(float *y, float *rstd, const float *x, const float *w, int M,
				   int D, float eps)
{
	int row = blockIdx.x * RMS_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
	if (row >= M)
		return;
	const float *xr = x + (size_t)row * D;
	float *yr = y + (size_t)row * D;
	float s = 0.0f;
	for (int j = lane; j < D; j += 32)
		s += xr[j] * xr[j];
	float rs = 1.0f / sqrtf(aim_warp_sum(s) / D + eps);
	for (int j = lane; j < D; j += 32)
		yr[j] = xr[j] * rs * w[j];
	if (lane == 0 && rstd)
		rstd[row] = rs;
}

void cuda_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int M, int D,
		      float eps)
{
	if (M <= 0 || D <= 0)
		return;
	AIM_LAUNCH(rmsnorm_fwd_kernel, (unsigned)((M + RMS_WARPS - 1) / RMS_WARPS),
		   32 * RMS_WARPS, 0, y, rstd, x, w, M, D, eps);
	aim_cuda_launched("rmsnorm_fwd");
}

/* dx += rstd · (g − x̂ · mean(g ⊙ x̂)) with x̂ = x·rstd, g = dy ⊙ w. */
__global__ void rmsnorm_bwd_dx_kernel(float *dx, const float *dy, const float *x, const float *w,
				      const float *rstd, int M, int D)
{
	int row = blockIdx.x * RMS_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
	if (row >= M)
		return;
	size_t o = (size_t)row * D;
	float rs = rstd[row], sgx = 0.0f;
	for (int j = lane; j < D; j += 32)
		sgx += dy[o + j] * w[j] * x[o + j] * rs;
	sgx = aim_warp_sum(sgx) / D;
	for (int j = lane; j < D; j += 32)
		dx[o + j] += rs * (dy[o + j] * w[j] - x[o + j] * rs * sgx);
}

/* part[c][j] = Σ_{rows of chunk c} dy·x̂ */
__global__ void rmsnorm_bwd_partial_kernel(float *part, const float *dy, const float *x,
					   const float *rstd, int M, int D, int rows_per_chunk)
{
	int j = blockIdx.x * RMS_COLS + threadIdx.x, c = blockIdx.y;
	if (j >= D)
		return;
	int r0 = c * rows_per_chunk, r1 = aim_imin(M, r0 + rows_per_chunk);
	float pw = 0.0f;
	for (int i = r0; i < r1; i++) {
		size_t o = (size_t)i * D + j;
		pw += dy[o] * x[o] * rstd[i];
	}
	part[(size_t)c * D + j] = pw;
}

__global__ void rmsnorm_bwd_reduce_kernel(float *dw, const float *part, int D, int nchunks)
{
	int j = blockIdx.x * RMS_COLS + threadIdx.x;
	if (j >= D)
		return;
	float sw = 0.0f;
	for (int c = 0; c < nchunks; c++)
		sw += part[(size_t)c * D + j];
	dw[j] += sw;
}

void cuda_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
		      const float *rstd, int M, int D)
{
	if (M <= 0 || D <= 0)
		return;
	if (dx) {
		AIM_LAUNCH(rmsnorm_bwd_dx_kernel, (unsigned)((M + RMS_WARPS - 1) / RMS_WARPS),
			   32 * RMS_WARPS, 0, dx, dy, x, w, rstd, M, D);
		aim_cuda_launched("rmsnorm_bwd");
	}
	if (!dw)
		return;
	/* The split depends on M only, so sums are formed in the same order
	 * on every device. */
	int nchunks = (M + 31) / 32;
	nchunks = nchunks < RMS_MAX_CHUNKS ? nchunks : RMS_MAX_CHUNKS;
	int rows_per_chunk = (M + nchunks - 1) / nchunks;
	nchunks = (M + rows_per_chunk - 1) / rows_per_chunk;
	float *part = (float *)aim_cuda_scratch(AIM_SCRATCH_LN, sizeof(float) * (size_t)nchunks * D);
	dim3 grid((unsigned)((D + RMS_COLS - 1) / RMS_COLS), (unsigned)nchunks);
	AIM_LAUNCH(rmsnorm_bwd_partial_kernel, grid, RMS_COLS, 0, part, dy, x, rstd, M, D,
		   rows_per_chunk);
	aim_cuda_launched("rmsnorm_bwd");
	AIM_LAUNCH(rmsnorm_bwd_reduce_kernel, (unsigned)((D + RMS_COLS - 1) / RMS_COLS), RMS_COLS, 0,
		   dw, part, D, nchunks);
	aim_cuda_launched("rmsnorm_bwd");
}
