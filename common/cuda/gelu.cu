/* Exact (erf) GELU, forward and backward (ops_gelu.c), with CUDA's erff
 * and expf (both accurate to a few ulp). */
#include "cuda/cuda_util.cuh"
#include "cuda/ops_cuda.cuh"

#define GELU_THREADS 256

/* y may alias x. */
__global__ void gelu_fwd_kernel(float *y, const float *x, size_t n)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float v = x[i];
		y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
	}
}

void cuda_gelu_fwd(float *y, const float *x, size_t n)
{
	if (!n)
		return;
	AIM_LAUNCH(gelu_fwd_kernel, aim_cuda_blocks(n, GELU_THREADS), GELU_THREADS, 0, y, x, n);
	aim_cuda_launched("gelu_fwd");
}

/* dx += dy · (Φ(x) + x·φ(x)) */
__global__ void gelu_bwd_kernel(float *dx, const float *dy, const float *x, size_t n)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float v = x[i];
		float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
		float pdf = 0.39894228040143268f * expf(-0.5f * v * v);
		dx[i] += dy[i] * (cdf + v * pdf);
	}
}

void cuda_gelu_bwd(float *dx, const float *dy, const float *x, size_t n)
{
	if (!n)
		return;
	AIM_LAUNCH(gelu_bwd_kernel, aim_cuda_blocks(n, GELU_THREADS), GELU_THREADS, 0, dx, dy, x,
		   n);
	aim_cuda_launched("gelu_bwd");
}
