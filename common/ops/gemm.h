/* The fp32 matrix product every CPU op and probe head calls:
 * C[M,N] = alpha·op(A)·op(B) + beta·C, row-major, op(A) [M,K] stored [M,K]
 * (lda ≥ K) or with ta [K,M] (lda ≥ M), likewise op(B) [K,N].
 *
 * Which library runs it is fixed per process, never measured at run time,
 * so a run and its resumption compute the same bits:
 *   oneDNN (dnnl_sgemm) when the build has it — on the machines measured
 *     (bench/gemm.sh) it was never slower than OpenBLAS, and 5-6× faster
 *     where OpenBLAS does not know the CPU and falls back to its generic
 *     SSE3 kernel (Debian's 0.3.21 on Sapphire Rapids);
 *   OpenBLAS otherwise, or when AIM_SGEMM=openblas is set (AIM_SGEMM=onednn
 *     asks for oneDNN and is an error without it).
 * Called from inside an OpenMP team (attention pieces, sample groups) it
 * runs on the calling thread alone; from outside, on all threads. */
#ifndef AIM_GEMM_H
#define AIM_GEMM_H

typedef enum { AIM_SGEMM_OPENBLAS = 0, AIM_SGEMM_ONEDNN = 1 } aim_sgemm_library;

void aim_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
	       const float *B, int ldb, float beta, float *C, int ldc);

/* The library this process uses (chosen on first call, from AIM_SGEMM and
 * the build); its name, "oneDNN" or "OpenBLAS". A bad AIM_SGEMM value is
 * reported once on stderr and the build's default used. */
aim_sgemm_library aim_sgemm_library_used(void);
const char *aim_sgemm_library_name(void);

#endif
