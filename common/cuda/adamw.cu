/* AdamW and the sum of squares behind the global gradient norm, on the
 * device (train_optim.c has the CPU versions). */
#include <math.h>

#include "cuda/aim_cuda_extra.h"
#include "cuda/cuda_util.cuh"

#define OPT_THREADS 256

/* The float arithmetic of aim_adamw_tensor, element by element. */
__global__ void adamw_kernel(float *w, float *m, float *v, const float *g, long n, float b1,
			     float b2, float eps, float shrink, float step_size, float bc2_sqrt)
{
	for (long j = (long)blockIdx.x * blockDim.x + threadIdx.x; j < n;
	     j += (long)gridDim.x * blockDim.x) {
		float gj = g[j];
		float wj = w[j] * shrink;
		float mj = m[j] * b1 + (1.0f - b1) * gj;
		float vj = v[j] * b2 + (1.0f - b2) * gj * gj;
		m[j] = mj;
		v[j] = vj;
		float denom = sqrtf(vj) / bc2_sqrt + eps;
		w[j] = wj - step_size * (mj / denom);
	}
}

extern "C" void aim_cuda_adamw(float *w, float *m, float *v, const float *g, long n, double lr,
			       double beta1, double beta2, double eps, double weight_decay,
			       int decay, long step)
{
	if (n <= 0 || step < 1)
		return;
	/* the constants exactly as aim_adamw_tensor forms them */
	const double bc1 = 1.0 - pow(beta1, (double)step);
	const double bc2 = 1.0 - pow(beta2, (double)step);
	const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
	const float shrink = decay ? (float)(1.0 - lr * weight_decay) : 1.0f;
	AIM_LAUNCH(adamw_kernel, aim_cuda_blocks((size_t)n, OPT_THREADS), OPT_THREADS, 0, w, m, v, g,
		   n, (float)beta1, (float)beta2, (float)eps, shrink, step_size, bc2_sqrt);
	aim_cuda_launched("adamw");
}

/* part[block] = Σ x² over the block's grid-stride share, in double. */
__global__ void sumsq_partial_kernel(double *part, const float *x, long n)
{
	__shared__ double red[32];
	double s = 0;
	for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (long)gridDim.x * blockDim.x)
		s += (double)x[i] * x[i];
	s = aim_block_sum(s, red);
	if (threadIdx.x == 0)
		part[blockIdx.x] = s;
}

__global__ void sumsq_final_kernel(double *total, const double *part, int nparts)
{
	__shared__ double red[32];
	double s = 0;
	for (int i = threadIdx.x; i < nparts; i += blockDim.x)
		s += part[i];
	s = aim_block_sum(s, red);
	if (threadIdx.x == 0)
		*total = s;
}

extern "C" double aim_cuda_sumsq(const float *x, long n)
{
	if (n <= 0)
		return 0.0;
	/* the grid depends on n only: the same order of sums on every run */
	const unsigned blocks = aim_cuda_blocks((size_t)n, OPT_THREADS);
	double *buf = (double *)aim_cuda_scratch(AIM_SCRATCH_REDUCE, sizeof(double) * (blocks + 1));
	AIM_LAUNCH(sumsq_partial_kernel, blocks, OPT_THREADS, 0, buf + 1, x, n);
	aim_cuda_launched("sumsq");
	AIM_LAUNCH(sumsq_final_kernel, 1, 1024, 0, buf, buf + 1, (int)blocks);
	aim_cuda_launched("sumsq");
	double total = 0;
	aim_cuda_fetch(&total, buf, sizeof total, "sumsq");
	return total;
}
