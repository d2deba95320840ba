/* The next-patch normalised-pixel loss on the device (train_loss.h has the
 * definition and the CPU version): targets, forward, backward over the
 * rows that predict a patch, and the row gather/scatter that feeds those
 * rows to the pixel head. Sums are in double, as on the CPU. */
#include <math.h>

#include "cuda/aim_cuda_extra.h"
#include "cuda/cuda_util.cuh"

#define PL_WARPS 4       /* patches (rows) per block */
#define PL_NORM_EPS 1e-6 /* AIM_NORM_PIX_EPS */

/* One warp per patch: mean, unbiased variance, then the standardised
 * copy (or a plain copy). */
__global__ void pixloss_targets_kernel(float *target, const float *patches, long npatches, int P,
				       int norm_pix, float *stats)
{
	long i = (long)blockIdx.x * PL_WARPS + threadIdx.x / 32;
	int lane = threadIdx.x % 32;
	if (i >= npatches)
		return;
	const float *x = patches + (size_t)i * P;
	float *t = target + (size_t)i * P;
	double sum = 0;
	for (int j = lane; j < P; j += 32)
		sum += x[j];
	double mean = aim_warp_sum(sum) / P;
	double sq = 0;
	for (int j = lane; j < P; j += 32)
		sq += (x[j] - mean) * (x[j] - mean);
	double sd = sqrt(aim_warp_sum(sq) / (P > 1 ? P - 1 : 1) + PL_NORM_EPS);
	if (stats && lane == 0) {
		stats[2 * i] = (float)mean;
		stats[2 * i + 1] = (float)sd;
	}
	for (int j = lane; j < P; j += 32)
		t[j] = norm_pix ? (float)((x[j] - mean) / sd) : x[j];
}

extern "C" void aim_cuda_pixloss_targets(float *target, const float *patches, long npatches,
					 int P, int norm_pix, float *stats)
{
	if (npatches <= 0 || P <= 0)
		return;
	AIM_LAUNCH(pixloss_targets_kernel, (unsigned)((npatches + PL_WARPS - 1) / PL_WARPS),
		   32 * PL_WARPS, 0, target, patches, npatches, P, norm_pix, stats);
	aim_cuda_launched("pixloss_targets");
}

/* rowloss[i] = mean squared error of pred row i against target row
 * rows[i] + 1. */
__global__ void pixloss_rows_kernel(double *rowloss, const float *pred, const float *target,
				    const int *rows, long M, int P)
{
	long i = (long)blockIdx.x * PL_WARPS + threadIdx.x / 32;
	int lane = threadIdx.x % 32;
	if (i >= M)
		return;
	const float *y = pred + (size_t)i * P, *t = target + ((size_t)rows[i] + 1) * P;
	double se = 0;
	for (int j = lane; j < P; j += 32) {
		double d = (double)y[j] - t[j];
		se += d * d;
	}
	se = aim_warp_sum(se);
	if (lane == 0)
		rowloss[i] = se / P;
}

/* One block adds the rows in a fixed order. */
__global__ void pixloss_sum_kernel(double *total, const double *rowloss, long n)
{
	__shared__ double red[32];
	double s = 0;
	for (long i = threadIdx.x; i < n; i += blockDim.x)
		s += rowloss[i];
	s = aim_block_sum(s, red);
	if (threadIdx.x == 0)
		*total = s;
}

extern "C" double aim_cuda_pixloss_forward(const float *pred, const float *target,
					   const int *rows, long M, int P, double denom)
{
	if (M <= 0 || P <= 0)
		return 0.0;
	const int *rdev = aim_cuda_ints(AIM_SCRATCH_ROWS, rows, M);
	double *buf = (double *)aim_cuda_scratch(AIM_SCRATCH_LOSS, sizeof(double) * (M + 1));
	AIM_LAUNCH(pixloss_rows_kernel, (unsigned)((M + PL_WARPS - 1) / PL_WARPS), 32 * PL_WARPS, 0,
		   buf + 1, pred, target, rdev, M, P);
	aim_cuda_launched("pixloss_forward");
	AIM_LAUNCH(pixloss_sum_kernel, 1, 1024, 0, buf, buf + 1, M);
	aim_cuda_launched("pixloss_forward");
	double total = 0;
	aim_cuda_fetch(&total, buf, sizeof total, "pixloss_forward");
	return total / denom;
}

/* dpred[i] = 2/(P·denom) · (pred[i] − target[rows[i] + 1]) */
__global__ void pixloss_bwd_kernel(float *dpred, const float *pred, const float *target,
				   const int *rows, int P, size_t total, float scale)
{
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total;
	     e += (size_t)gridDim.x * blockDim.x) {
		size_t i = e / P, j = e % P;
		dpred[e] = scale * (pred[e] - target[((size_t)rows[i] + 1) * P + j]);
	}
}

extern "C" void aim_cuda_pixloss_backward(const float *pred, const float *target,
					  const int *rows, long M, int P, double denom,
					  float *dpred)
{
	if (M <= 0 || P <= 0)
		return;
	const size_t total = (size_t)M * P;
	const int *rdev = aim_cuda_ints(AIM_SCRATCH_ROWS, rows, M);
	const float scale = (float)(2.0 / ((double)P * denom));
	AIM_LAUNCH(pixloss_bwd_kernel, aim_cuda_blocks(total, 256), 256, 0, dpred, pred, target,
		   rdev, P, total, scale);
	aim_cuda_launched("pixloss_backward");
}

/* dst[i] = src[rows[i]] (gather), or dst[rows[i]] = src[i] (scatter), rows
 * of D floats. */
__global__ void rows_move_kernel(float *dst, const float *src, const int *rows, int D,
				 size_t total, int scatter)
{
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total;
	     e += (size_t)gridDim.x * blockDim.x) {
		size_t i = e / D, j = e % D, r = (size_t)rows[i];
		if (scatter)
			dst[r * D + j] = src[e];
		else
			dst[e] = src[r * D + j];
	}
}

static void rows_move(float *dst, const float *src, const int *rows, long M, int D, int scatter)
{
	if (M <= 0 || D <= 0)
		return;
	const size_t total = (size_t)M * D;
	const int *rdev = aim_cuda_ints(AIM_SCRATCH_ROWS, rows, M);
	AIM_LAUNCH(rows_move_kernel, aim_cuda_blocks(total, 256), 256, 0, dst, src, rdev, D, total,
		   scatter);
	aim_cuda_launched(scatter ? "scatter_rows" : "gather_rows");
}

extern "C" void aim_cuda_gather_rows(float *dst, const float *src, const int *rows, long M,
				     int D)
{
	rows_move(dst, src, rows, M, D, 0);
}

extern "C" void aim_cuda_scatter_rows(float *dst, const float *src, const int *rows, long M,
				      int D)
{
	rows_move(dst, src, rows, M, D, 1);
}
