/* The cuBLAS declarations linear.cu uses, for the CPU emulation build
 * (emu.cuh). The functions themselves are defined by the test that links
 * the emulated ops (tests/gpu/emu_ops.cc), from cuBLAS's documented
 * column-major semantics, so the row-major mapping of linear.cu is
 * checked against an independent reading of the interface. */
#ifndef AIM_CUDA_EMU_BLAS_CUH
#define AIM_CUDA_EMU_BLAS_CUH

#ifndef AIM_CUDA_EMULATE
#error "emu_blas.cuh is for the CPU emulation build only"
#endif

typedef void *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum {
	CUBLAS_COMPUTE_32F = 68,
	CUBLAS_COMPUTE_32F_FAST_16BF = 75,
	CUBLAS_COMPUTE_32F_FAST_TF32 = 77
} cublasComputeType_t;
typedef enum { CUDA_R_32F = 0 } cudaDataType;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;

const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
			    int n, int k, const void *alpha, const void *A, cudaDataType at,
			    int lda, const void *B, cudaDataType bt, int ldb, const void *beta,
			    void *C, cudaDataType ct, int ldc, cublasComputeType_t compute,
			    cublasGemmAlgo_t algo);
cublasStatus_t cublasSgemv(cublasHandle_t h, cublasOperation_t t, int m, int n,
			   const float *alpha, const float *A, int lda, const float *x, int incx,
			   const float *beta, float *y, int incy);

#endif
