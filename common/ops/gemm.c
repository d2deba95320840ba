/* The fp32 GEMM behind gemm.h: oneDNN's or OpenBLAS's, picked once.
 *
 * OpenBLAS path: one thread pool for everything. A large product is cut
 * into panels along the larger of M and N, each panel an OpenBLAS call in
 * the OpenMP thread that took it, OpenBLAS itself held at one thread
 * meanwhile: with OpenBLAS's own threads and OpenMP's both waiting on two
 * cores, each pool spun while the other worked (a fifth of the time went
 * to sched_yield); a single pool leaves nothing idle-spinning.
 *
 * oneDNN path: dnnl_sgemm threads over OpenMP itself (the same runtime as
 * ours) and runs sequentially inside a team, so it needs no panels; being
 * a function, not a primitive, it has no creation cost for the many small
 * shapes of the attention. */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"

#ifdef AIM_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

static int g_library = -1;

aim_sgemm_library aim_sgemm_library_used(void)
{
	int lib = __atomic_load_n(&g_library, __ATOMIC_ACQUIRE);
	if (lib >= 0)
		return (aim_sgemm_library)lib;
	const char *complaint;
	lib = aim_sgemm_env_onednn(&complaint) ? AIM_SGEMM_ONEDNN : AIM_SGEMM_OPENBLAS;
	if (complaint)
		fprintf(stderr, "aim: AIM_SGEMM=%s: %s; using %s\n", getenv("AIM_SGEMM"), complaint,
			lib == AIM_SGEMM_ONEDNN ? "oneDNN" : "OpenBLAS");
	__atomic_store_n(&g_library, lib, __ATOMIC_RELEASE);
	return (aim_sgemm_library)lib;
}

const char *aim_sgemm_library_name(void)
{
	return aim_sgemm_library_used() == AIM_SGEMM_ONEDNN ? "oneDNN" : "OpenBLAS";
}

static void openblas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
			   int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	CBLAS_TRANSPOSE cta = ta ? CblasTrans : CblasNoTrans, ctb = tb ? CblasTrans : CblasNoTrans;
	int nt = omp_get_max_threads();
	if (omp_in_parallel() || nt <= 1 || (double)M * N * K < 4e6) {
		cblas_sgemm(CblasRowMajor, cta, ctb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	/* Panels along the longer side, two per thread and at least 256 wide,
	 * handed out dynamically: on a shared machine a thread that loses its
	 * core for a while holds the other less long at the barrier, while
	 * each panel still re-packs the shared operand only a few times
	 * (more panels cost a few percent in sgemm_oncopy). */
	int split_m = M >= N;
	int len = split_m ? M : N;
	int panel = (len + 2 * nt - 1) / (2 * nt);
	panel = panel < 256 ? 256 : (panel + 15) / 16 * 16;
	int npanels = (len + panel - 1) / panel;
	int held = aim_blas_hold_single();
	#pragma omp parallel for schedule(dynamic) num_threads(nt)
	for (int i = 0; i < npanels; i++) {
		int a = i * panel, b = a + panel < len ? a + panel : len;
		if (split_m) {
			const float *Ap = ta ? A + a : A + (size_t)a * lda;
			cblas_sgemm(CblasRowMajor, cta, ctb, b - a, N, K, alpha, Ap, lda, B, ldb, beta,
				    C + (size_t)a * ldc, ldc);
		} else {
			const float *Bp = tb ? B + (size_t)a * ldb : B + a;
			cblas_sgemm(CblasRowMajor, cta, ctb, M, b - a, K, alpha, A, lda, Bp, ldb, beta,
				    C + a, ldc);
		}
	}
	aim_blas_release(held);
}

void aim_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
	       const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
#ifdef AIM_HAVE_DNNL
	if (aim_sgemm_library_used() == AIM_SGEMM_ONEDNN) {
		if (K <= 0) { /* oneDNN wants K ≥ 1; C = beta·C, as BLAS does */
			for (int i = 0; i < M; i++)
				for (int j = 0; j < N; j++)
					C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f
									  : beta * C[(size_t)i * ldc + j];
			return;
		}
		dnnl_status_t s = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda,
					     B, ldb, beta, C, ldc);
		if (s != dnnl_success) {
			fprintf(stderr, "aim: oneDNN: sgemm %c%c %dx%dx%d (lda %d ldb %d ldc %d) "
					"failed (status %d)\n",
				ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, lda, ldb, ldc, (int)s);
			abort();
		}
		return;
	}
#endif
	openblas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
