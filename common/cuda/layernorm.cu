/* LayerNorm over the last dimension, forward and backward
 * (ops_layernorm.c).
 *
 * Forward and the input gradient: one warp per row, the row's sums by
 * warp shuffles (the row stays in L1 between passes). Weight and bias
 * gradients are column sums over all M rows: each block sums a chunk of
 * rows for 256 consecutive columns into a partial (coalesced reads), and a
 * second kernel adds the partials in a fixed order, so the result is the
 * same on every run (no atomics). */
#include <math.h>

#include "cuda/cuda_util.cuh"
#include "cuda/ops_cuda.cuh"

#define LN_WARPS 4        /* rows per block in the row kernels */
#define LN_COLS 256       /* columns per block in the partial sums */
#define LN_MAX_CHUNKS 256 /* row chunks of the partial sums */

/* Two passes (mean, then centred variance) keep the variance exact for
 * rows with a large mean, as the CPU op and PyTorch do. y may alias x. */
__global__ void layernorm_fwd_kernel(float *y, float *mean, float *rstd, const float *x,
				     const float *w, const float *b, int M, int D, float eps)
{
	int row = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
	if (row >= M)
		return;
	const float *xr = x + (size_t)row * D;
	float *yr = y + (size_t)row * D;
	float s = 0.0f;
	for (int j = lane; j < D; j += 32)
		s += xr[j];
	float mu = aim_warp_sum(s) / D;
	float v = 0.0f;
	for (int j = lane; j < D; j += 32) {
		float d = xr[j] - mu;
		v += d * d;
	}
	float rs = 1.0f / sqrtf(aim_warp_sum(v) / D + eps);
	for (int j = lane; j < D; j += 32)
		yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
	if (lane == 0) {
		if (mean)
			mean[row] = mu;
		if (rstd)
			rstd[row] = rs;
	}
}

void cuda_layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w,
			const float *b, int M, int D, float eps)
{
	if (M <= 0 || D <= 0)
		return;
	AIM_LAUNCH(layernorm_fwd_kernel, (unsigned)((M + LN_WARPS - 1) / LN_WARPS), 32 * LN_WARPS,
		   0, y, mean, rstd, x, w, b, M, D, eps);
	aim_cuda_launched("layernorm_fwd");
}

/* With x̂ = (x−μ)·rstd and g = dy ⊙ w:
 *   dx += rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)). */
__global__ void layernorm_bwd_dx_kernel(float *dx, const float *dy, const float *x,
					const float *w, const float *mean, const float *rstd,
					int M, int D)
{
	int row = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
	if (row >= M)
		return;
	size_t o = (size_t)row * D;
	float mu = mean[row], rs = rstd[row];
	float sg = 0.0f, sgx = 0.0f;
	for (int j = lane; j < D; j += 32) {
		float g = dy[o + j] * w[j];
		sg += g;
		sgx += g * (x[o + j] - mu) * rs;
	}
	sg = aim_warp_sum(sg) / D;
	sgx = aim_warp_sum(sgx) / D;
	for (int j = lane; j < D; j += 32) {
		float xh = (x[o + j] - mu) * rs;
		dx[o + j] += rs * (dy[o + j] * w[j] - sg - xh * sgx);
	}
}

/* part[c][j] = Σ_{rows of chunk c} dy·x̂ ; part[nchunks + c][j] = Σ dy. */
__global__ void layernorm_bwd_partial_kernel(float *part, const float *dy, const float *x,
					     const float *mean, const float *rstd, int M, int D,
					     int rows_per_chunk, int nchunks)
{
	int j = blockIdx.x * LN_COLS + threadIdx.x, c = blockIdx.y;
	if (j >= D)
		return;
	int r0 = c * rows_per_chunk, r1 = aim_imin(M, r0 + rows_per_chunk);
	float pw = 0.0f, pb = 0.0f;
	for (int i = r0; i < r1; i++) {
		size_t o = (size_t)i * D + j;
		float g = dy[o];
		pw += g * (x[o] - mean[i]) * rstd[i];
		pb += g;
	}
	part[(size_t)c * D + j] = pw;
	part[(size_t)(nchunks + c) * D + j] = pb;
}

__global__ void layernorm_bwd_reduce_kernel(float *dw, float *db, const float *part, int D,
					    int nchunks)
{
	int j = blockIdx.x * LN_COLS + threadIdx.x;
	if (j >= D)
		return;
	float sw = 0.0f, sb = 0.0f;
	for (int c = 0; c < nchunks; c++) {
		sw += part[(size_t)c * D + j];
		sb += part[(size_t)(nchunks + c) * D + j];
	}
	if (dw)
		dw[j] += sw;
	if (db)
		db[j] += sb;
}

void cuda_layernorm_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
			const float *w, const float *mean, const float *rstd, int M, int D)
{
	if (M <= 0 || D <= 0)
		return;
	if (dx) {
		AIM_LAUNCH(layernorm_bwd_dx_kernel, (unsigned)((M + LN_WARPS - 1) / LN_WARPS),
			   32 * LN_WARPS, 0, dx, dy, x, w, mean, rstd, M, D);
		aim_cuda_launched("layernorm_bwd");
	}
	if (!dw && !db)
		return;
	/* Chunks of at least 32 rows, at most LN_MAX_CHUNKS of them: the
	 * split depends on M only, so sums are formed in the same order on
	 * every device. */
	int nchunks = (M + 31) / 32;
	nchunks = nchunks < LN_MAX_CHUNKS ? nchunks : LN_MAX_CHUNKS;
	int rows_per_chunk = (M + nchunks - 1) / nchunks;
	nchunks = (M + rows_per_chunk - 1) / rows_per_chunk;
	float *part = (float *)aim_cuda_scratch(AIM_SCRATCH_LN,
						 sizeof(float) * 2 * (size_t)nchunks * D);
	dim3 grid((unsigned)((D + LN_COLS - 1) / LN_COLS), (unsigned)nchunks);
	AIM_LAUNCH(layernorm_bwd_partial_kernel, grid, LN_COLS, 0, part, dy, x, mean, rstd, M, D,
		   rows_per_chunk, nchunks);
	aim_cuda_launched("layernorm_bwd");
	AIM_LAUNCH(layernorm_bwd_reduce_kernel, (unsigned)((D + LN_COLS - 1) / LN_COLS), LN_COLS,
		   0, dw, db, part, D, nchunks);
	aim_cuda_launched("layernorm_bwd");
}
