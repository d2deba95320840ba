/* Linear layer and patch embedding through cuBLAS (ops_linear.c).
 *
 * Row-major [rows, cols] is column-major [cols, rows] with the same
 * leading dimension, so every product is written for cuBLAS as its
 * transpose:
 *   y[M,out]  = x[M,in]·w[out,in]ᵀ  ->  yᵀ = w·xᵀ    gemm(T, N, out, M, in)
 *   dx[M,in] += dy[M,out]·w           ->  dxᵀ = wᵀ·dyᵀ  gemm(N, N, in, M, out)
 *   dw[out,in] += dyᵀ·x               ->  dwᵀ = xᵀ·dy   gemm(N, T, in, out, M)
 *   db[out]  += Σ_rows dy             ->  gemv(N) of dyᵀ [out, M] with ones[M]
 * The GEMMs take fp32 in and out and run at the precision chosen by
 * aim_cuda_set_precision (fp32, tf32, or bf16 with fp32 accumulation). */
#include "cuda/cuda_blas.cuh"
#include "cuda/cuda_util.cuh"
#include "cuda/ops_cuda.cuh"

/* The layer's widths in and out decide a bf16 product's precision
 * (aim_bf16_narrow: narrow ones stay fp32). */
static void gemm(const char *op, int in, int out, cublasOperation_t ta, cublasOperation_t tb,
		 int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta,
		 float *C, int ldc)
{
	const float alpha = 1.0f;
	cublasComputeType_t compute = aim_cuda_compute_type();
	if (compute == CUBLAS_COMPUTE_32F_FAST_16BF && aim_bf16_narrow(in, out))
		compute = CUBLAS_COMPUTE_32F;
	AIM_CUBLAS_CHECK(op, cublasGemmEx(aim_cuda_blas(), ta, tb, m, n, k, &alpha, A, CUDA_R_32F,
					  lda, B, CUDA_R_32F, ldb, &beta, C, CUDA_R_32F, ldc,
					  compute, CUBLAS_GEMM_DEFAULT));
	aim_cuda_launched(op);
}

/* y[M, out] = b broadcast over the rows. */
__global__ void linear_bias_kernel(float *y, const float *b, size_t total, int out)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] = b[i % (size_t)out];
}

__global__ void linear_fill_kernel(float *p, float v, size_t n)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		p[i] = v;
}

void cuda_linear_fwd(float *y, const float *x, const float *w, const float *b, int M, int in,
		     int out)
{
	if (M <= 0 || out <= 0)
		return;
	const size_t total = (size_t)M * out;
	float beta = 0.0f;
	if (b) {
		/* start from the bias and let the GEMM add onto it */
		AIM_LAUNCH(linear_bias_kernel, aim_cuda_blocks(total, 256), 256, 0, y, b, total,
			   out);
		aim_cuda_launched("linear_fwd");
		beta = 1.0f;
	}
	if (in <= 0) { /* an empty product: y is the bias, or zero */
		if (!b)
			AIM_CUDA_CHECK("linear_fwd", cudaMemsetAsync(y, 0, total * sizeof(float),
								    aim_cuda_stream()));
		return;
	}
	gemm("linear_fwd", in, out, CUBLAS_OP_T, CUBLAS_OP_N, out, M, in, w, in, x, in, beta, y, out);
}

/* The product, then the exact GELU in place: cuBLASLt's GELU epilogue
 * is the tanh approximation, so the two stay apart here (the CPU's bf16
 * mode is where fusing them pays). */
void cuda_linear_gelu_fwd(float *y, const float *x, const float *w, const float *b, int M,
			  int in, int out)
{
	cuda_linear_fwd(y, x, w, b, M, in, out);
	if (M > 0 && out > 0)
		cuda_gelu_fwd(y, y, (size_t)M * out);
}

void cuda_linear_fwd_acc(float *y, const float *x, const float *w, const float *b, int M,
			 int in, int out)
{
	if (M <= 0 || out <= 0)
		return;
	if (b)
		cuda_add_rows(y, b, M, (size_t)out);
	if (in > 0)
		gemm("linear_fwd_acc", in, out, CUBLAS_OP_T, CUBLAS_OP_N, out, M, in, w, in, x, in, 1.0f, y,
		     out);
}

/* ones[0..M) for the bias gradient's row sum; kept between calls. */
static const float *ones(int M)
{
	static size_t filled;
	static float *buf;
	float *p = (float *)aim_cuda_scratch(AIM_SCRATCH_ONES, sizeof(float) * (size_t)M);
	if (p != buf || (size_t)M > filled) {
		AIM_LAUNCH(linear_fill_kernel, aim_cuda_blocks((size_t)M, 256), 256, 0, p, 1.0f,
			   (size_t)M);
		aim_cuda_launched("linear_bwd");
		buf = p;
		filled = (size_t)M;
	}
	return p;
}

void cuda_linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
		     const float *w, int M, int in, int out)
{
	if (M <= 0 || out <= 0)
		return;
	if (dx && in > 0)
		gemm("linear_bwd", in, out, CUBLAS_OP_N, CUBLAS_OP_N, in, M, out, w, in, dy, out, 1.0f, dx,
		     in);
	if (dw && in > 0)
		gemm("linear_bwd", in, out, CUBLAS_OP_N, CUBLAS_OP_T, in, out, M, x, in, dy, out, 1.0f, dw,
		     in);
	if (db) {
		const float alpha = 1.0f, beta = 1.0f;
		AIM_CUBLAS_CHECK("linear_bwd", cublasSgemv(aim_cuda_blas(), CUBLAS_OP_N, out, M,
							   &alpha, dy, out, ones(M), 1, &beta,
							   db, 1));
		aim_cuda_launched("linear_bwd");
	}
}

void cuda_patch_embed_fwd(float *y, const float *patches, const float *w, const float *b,
			  int M, int P, int D)
{
	cuda_linear_fwd(y, patches, w, b, M, P, D);
}

void cuda_patch_embed_bwd(float *dw, float *db, const float *dy, const float *patches, int M,
			  int P, int D)
{
	cuda_linear_bwd(NULL, dw, db, dy, patches, NULL, M, P, D);
}
