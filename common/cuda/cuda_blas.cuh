/* The cuBLAS handle of the backend and the precision its GEMMs use
 * (backend_cuda.cu owns both; linear.cu uses them). */
#ifndef AIM_CUDA_BLAS_CUH
#define AIM_CUDA_BLAS_CUH

#ifdef AIM_CUDA_EMULATE
#include "cuda/emu_blas.cuh"
#else
#include <cublas_v2.h>
#endif

cublasHandle_t aim_cuda_blas(void);
/* CUBLAS_COMPUTE_32F (fp32), _32F_FAST_TF32 (tf32) or _32F_FAST_16BF
 * (bf16 products, fp32 accumulation): see aim_cuda_set_precision(). */
cublasComputeType_t aim_cuda_compute_type(void);

/* Abort with the op's name when a cuBLAS call fails. */
#define AIM_CUBLAS_CHECK(op, call)                                                  \
	do {                                                                        \
		cublasStatus_t aim_s_ = (call);                                     \
		if (aim_s_ != CUBLAS_STATUS_SUCCESS)                                \
			aim_cuda_fail((op), #call, cublasGetStatusString(aim_s_));  \
	} while (0)

#endif
