/* Element-wise helpers: residual adds, broadcast rows, axpy, scaling
 * (ops_add.c). Grid-stride loops over size_t indices, so any n works. */
#include "cuda/cuda_util.cuh"
#include "cuda/ops_cuda.cuh"

#define ADD_THREADS 256

/* y may alias a or b: each element is read and written by one thread. */
__global__ void add_kernel(float *y, const float *a, const float *b, size_t n)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] = a[i] + b[i];
}

void cuda_add_fwd(float *y, const float *a, const float *b, size_t n)
{
	if (!n)
		return;
	AIM_LAUNCH(add_kernel, aim_cuda_blocks(n, ADD_THREADS), ADD_THREADS, 0, y, a, b, n);
	aim_cuda_launched("add_fwd");
}

/* y[B, N] += t[N]: element i of y takes t[i mod N]. */
__global__ void add_rows_kernel(float *y, const float *t, size_t total, size_t N)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] += t[i % N];
}

void cuda_add_rows(float *y, const float *t, int B, size_t N)
{
	if (B <= 0 || !N)
		return;
	size_t total = (size_t)B * N;
	AIM_LAUNCH(add_rows_kernel, aim_cuda_blocks(total, ADD_THREADS), ADD_THREADS, 0, y, t,
		   total, N);
	aim_cuda_launched("add_rows");
}

__global__ void axpy_kernel(float *y, float s, const float *x, size_t n)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] += s * x[i];
}

void cuda_axpy(float *y, float s, const float *x, size_t n)
{
	if (!n)
		return;
	AIM_LAUNCH(axpy_kernel, aim_cuda_blocks(n, ADD_THREADS), ADD_THREADS, 0, y, s, x, n);
	aim_cuda_launched("axpy");
}

/* y may alias x. */
__global__ void scale_kernel(float *y, float s, const float *x, size_t n)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] = s * x[i];
}

void cuda_scale(float *y, float s, const float *x, size_t n)
{
	if (!n)
		return;
	AIM_LAUNCH(scale_kernel, aim_cuda_blocks(n, ADD_THREADS), ADD_THREADS, 0, y, s, x, n);
	aim_cuda_launched("scale");
}

/* y[b, :] = a[b, :] + s[b]·x[b, :] (a NULL: 0); y may alias a or x. */
__global__ void add_scaled_rows_kernel(float *y, const float *a, const float *s, const float *x,
				       size_t total, size_t N)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] = (a ? a[i] : 0.0f) + s[i / N] * x[i];
}

void cuda_add_scaled_rows(float *y, const float *a, const float *s, const float *x, int B,
			  size_t N)
{
	if (B <= 0 || !N)
		return;
	size_t total = (size_t)B * N;
	AIM_LAUNCH(add_scaled_rows_kernel, aim_cuda_blocks(total, ADD_THREADS), ADD_THREADS, 0, y, a,
		   s, x, total, N);
	aim_cuda_launched("add_scaled_rows");
}
