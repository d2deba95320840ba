/* One pool of threads for OpenBLAS and OpenMP.
 *
 * Where our OpenMP threads each make their own BLAS calls (GEMM panels,
 * attention pieces, groups of samples, bank blocks), OpenBLAS is held at
 * one thread meanwhile: with both pools waiting on the same cores, each
 * spun while the other worked. Inside a caller's team OpenBLAS is already
 * held, and nothing is done. */
#ifndef AIM_BLAS_THREADS_H
#define AIM_BLAS_THREADS_H

/* Hold OpenBLAS at one thread; returns what aim_blas_release restores. */
int aim_blas_hold_single(void);
void aim_blas_release(int held);

/* Whether the fp32 GEMMs go to oneDNN: in a build with oneDNN, unless
 * AIM_SGEMM=openblas. Read by the GEMM (ops/gemm.c) and, before it, by the
 * start-up that sets how idle threads wait (cli.c): one rule for both.
 * *complaint (may be NULL) is set to why a given AIM_SGEMM value was not
 * honoured, else NULL. */
int aim_sgemm_env_onednn(const char **complaint);

/* OpenBLAS's own thread control (not in cblas.h of every version). */
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);

#endif
