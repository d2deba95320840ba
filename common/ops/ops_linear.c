/* Linear layer and patch embedding: one GEMM at M = B·K rows (gemm.h,
 * which picks the library). */
#include <string.h>

#include "gemm.h"
#include "ops.h"

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
	aim_sgemm(0, 1, M, out, in, 1.0f, x, in, w, in, beta, y, out);
}

void aim_linear_fwd_acc(float *y, const float *x, const float *w, const float *b,
			int M, int in, int out)
{
	if (b)
		aim_add_rows(y, b, M, (size_t)out);
	aim_sgemm(0, 1, M, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
}

void aim_linear_gelu_fwd(float *y, const float *x, const float *w, const float *b,
			 int M, int in, int out)
{
	aim_linear_fwd(y, x, w, b, M, in, out);
	aim_gelu_fwd(y, y, (size_t)M * out);
}

void aim_linear_bwd(float *dx, float *dw, float *db, const float *dy,
		    const float *x, const float *w, int M, int in, int out)
{
	if (dx) /* dx[M,in] += dy[M,out] · w[out,in] */
		aim_sgemm(0, 0, M, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
	if (dw) /* dw[out,in] += dyᵀ · x */
		aim_sgemm(1, 0, out, in, M, 1.0f, dy, out, x, in, 1.0f, dw, in);
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
