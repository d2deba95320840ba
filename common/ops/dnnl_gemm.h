/* One GEMM through oneDNN's matmul primitive (C API dnnl.h), for the CPU
 * backend's bf16 products and for the fp32 shapes where oneDNN beats
 * OpenBLAS. Optional at build time (AIM_HAVE_DNNL, found by the Makefile);
 * without it aim_dnnl_available() is 0 and aim_dnnl_gemm() must not be
 * called.
 *
 * One primitive per shape (types, transposes, sizes, strides, bias,
 * accumulate, and whether the call runs inside a parallel region), created
 * on first use and kept for the life of the process; calls from several
 * threads at once are safe (each thread has its own stream and scratchpad). */
#ifndef AIM_DNNL_GEMM_H
#define AIM_DNNL_GEMM_H

#include <stdint.h>

typedef enum {
	AIM_GEMM_F32 = 0,   /* A, B float */
	AIM_GEMM_BF16 = 1,  /* A, B bf16 (uint16_t, aim_bf16_from_f32); fp32 accumulation */
} aim_gemm_type;

/* 1 when the library was built with oneDNN. */
int aim_dnnl_available(void);
/* "oneDNN 2.6.3", or NULL without oneDNN. */
const char *aim_dnnl_version(void);
/* The most capable ISA oneDNN may use here ("avx512_core_amx",
 * "avx512_core_bf16", "avx2", ...; respects ONEDNN_MAX_CPU_ISA), or NULL. */
const char *aim_dnnl_isa(void);
/* 1 when that ISA computes bf16 natively (AVX512_BF16 or AMX); below it
 * oneDNN only emulates bf16, slower than fp32. */
int aim_dnnl_native_bf16(void);
/* The kernel oneDNN picks for a bf16 product ("brg:avx512_core_amx"), or
 * NULL (no oneDNN, or no bf16 matmul at all). */
const char *aim_dnnl_bf16_kernel(void);

/* What happens to the product before it is stored (post, a bit set):
 * added onto C, and/or passed through the exact GELU (erf), in that order;
 * oneDNN does both inside the kernel, on the fp32 accumulators. */
enum {
	AIM_GEMM_ACCUMULATE = 1,
	AIM_GEMM_GELU = 2,
};

/* C[M,N] (fp32, row stride ldc) = op(A)·op(B) (+ bias[N] when not NULL),
 * then the post operations above (0: none). Row-major: op(A) is [M,K], stored
 * [M,K] (lda ≥ K) or, with ta, [K,M] (lda ≥ M); likewise op(B) [K,N],
 * stored [K,N] or, with tb, [N,K]. Aborts with oneDNN's status if the
 * primitive cannot be made (never for the shapes a model produces). */
void aim_dnnl_gemm(aim_gemm_type type, int ta, int tb, int M, int N, int K, const void *A,
		   int lda, const void *B, int ldb, const float *bias, int post, float *C,
		   int ldc);

#endif
