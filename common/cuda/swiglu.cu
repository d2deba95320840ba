/* The SwiGLU gate y = silu(a) · b, forward and backward (ops_swiglu.c),
 * with CUDA's expf. */
#include "cuda/cuda_util.cuh"
#include "cuda/ops_cuda.cuh"

#define SWIGLU_THREADS 256

/* y may alias a or b. */
__global__ void swiglu_fwd_kernel(float *y, const float *a, const float *b, size_t n)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float v = a[i];
		y[i] = v / (1.0f + expf(-v)) * b[i];
	}
}

void cuda_swiglu_fwd(float *y, const float *a, const float *b, size_t n)
{
	if (!n)
		return;
	AIM_LAUNCH(swiglu_fwd_kernel, aim_cuda_blocks(n, SWIGLU_THREADS), SWIGLU_THREADS, 0, y, a,
		   b, n);
	aim_cuda_launched("swiglu_fwd");
}

/* da += dy · b · σ(a)(1 + a(1 − σ(a))) ; db += dy · a·σ(a) */
__global__ void swiglu_bwd_kernel(float *da, float *db, const float *dy, const float *a,
				  const float *b, size_t n)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float v = a[i], s = 1.0f / (1.0f + expf(-v));
		da[i] += dy[i] * b[i] * s * (1.0f + v * (1.0f - s));
		db[i] += dy[i] * v * s;
	}
}

void cuda_swiglu_bwd(float *da, float *db, const float *dy, const float *a, const float *b,
		     size_t n)
{
	if (!n)
		return;
	AIM_LAUNCH(swiglu_bwd_kernel, aim_cuda_blocks(n, SWIGLU_THREADS), SWIGLU_THREADS, 0, da, db,
		   dy, a, b, n);
	aim_cuda_launched("swiglu_bwd");
}
