/* Linear layer and patch embedding: one sgemm at M = B·K rows.
 *
 * One thread pool for everything: each GEMM is cut into panels along the
 * larger of M and N, and every panel is an OpenBLAS call running in the
 * OpenMP thread that took it, OpenBLAS itself held at one thread
 * meanwhile. With OpenBLAS's own threads and OpenMP's both waiting on two
 * cores, each pool spun while the other worked (a fifth of the time went to
 * sched_yield); a single pool leaves nothing idle-spinning. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "blas_threads.h"
#include "ops.h"

static void par_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
		      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	int nt = omp_get_max_threads();
	if (omp_in_parallel() || nt <= 1 || (double)M * N * K < 4e6) {
		cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
			const float *Ap = ta == CblasNoTrans ? A + (size_t)a * lda : A + a;
			cblas_sgemm(CblasRowMajor, ta, tb, b - a, N, K, alpha, Ap, lda, B, ldb, beta,
				    C + (size_t)a * ldc, ldc);
		} else {
			const float *Bp = tb == CblasNoTrans ? B + a : B + (size_t)a * ldb;
			cblas_sgemm(CblasRowMajor, ta, tb, M, b - a, K, alpha, A, lda, Bp, ldb, beta,
				    C + a, ldc);
		}
	}
	aim_blas_release(held);
}

void aim_linear_fwd(float *y, const float *x, const float *w, const float *b,
		    int M, int in, int out)
{
	float beta = 0.0f;
	if (b) {
		/* Start from the bias and let the GEMM add onto it (beta = 1):
		 * no second pass over y. */
		for (int i = 0; i < M; i++)
			memcpy(y + (size_t)i * out, b, sizeof(float) * out);
		beta = 1.0f;
	}
	par_sgemm(CblasNoTrans, CblasTrans, M, out, in, 1.0f, x, in, w, in, beta, y, out);
}

void aim_linear_fwd_acc(float *y, const float *x, const float *w, const float *b,
			int M, int in, int out)
{
	if (b)
		aim_add_rows(y, b, M, (size_t)out);
	par_sgemm(CblasNoTrans, CblasTrans, M, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
}

void aim_linear_bwd(float *dx, float *dw, float *db, const float *dy,
		    const float *x, const float *w, int M, int in, int out)
{
	if (dx) /* dx[M,in] += dy[M,out] · w[out,in] */
		par_sgemm(CblasNoTrans, CblasNoTrans, M, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
	if (dw) /* dw[out,in] += dyᵀ · x */
		par_sgemm(CblasTrans, CblasNoTrans, out, in, M, 1.0f, dy, out, x, in, 1.0f, dw, in);
	if (db) {
		#pragma omp parallel for schedule(static)
		for (int j = 0; j < out; j++) {
			float s = 0.0f;
			for (int i = 0; i < M; i++)
				s += dy[(size_t)i * out + j];
			db[j] += s;
		}
	}
}

void aim_patch_embed_fwd(float *y, const float *patches, const float *w, const float *b,
			 int M, int P, int D)
{
	aim_linear_fwd(y, patches, w, b, M, P, D);
}

void aim_patch_embed_bwd(float *dw, float *db, const float *dy, const float *patches,
			 int M, int P, int D)
{
	aim_linear_bwd(NULL, dw, db, dy, patches, NULL, M, P, D);
}
