/* LayerNorm over the last dimension (AIM uses eps 1e-6 everywhere). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "ops_math.h"

AIM_VECTOR_CLONES
static void layernorm_row(float *y, float *mean_out, float *rstd_out, const float *x,
			  const float *w, const float *b, int D, float eps)
{
	/* Two passes (mean, then centred variance) keep the variance exact for
	 * rows with a large mean, as PyTorch's kernel does. */
	float s = 0.0f;
	#pragma omp simd reduction(+ : s)
	for (int j = 0; j < D; j++)
		s += x[j];
	float mu = s / D;
	float v = 0.0f;
	#pragma omp simd reduction(+ : v)
	for (int j = 0; j < D; j++) {
		float d = x[j] - mu;
		v += d * d;
	}
	float rs = 1.0f / sqrtf(v / D + eps);
	#pragma omp simd
	for (int j = 0; j < D; j++)
		y[j] = (x[j] - mu) * rs * w[j] + b[j];
	if (mean_out)
		*mean_out = mu;
	if (rstd_out)
		*rstd_out = rs;
}

void aim_layernorm_fwd(float *y, float *mean, float *rstd, const float *x,
		       const float *w, const float *b, int M, int D, float eps)
{
	#pragma omp parallel for schedule(static)
	for (int i = 0; i < M; i++)
		layernorm_row(y + (size_t)i * D, mean ? mean + i : NULL, rstd ? rstd + i : NULL,
			      x + (size_t)i * D, w, b, D, eps);
}

/* With x̂ = (x−μ)·rstd and g = dy ⊙ w:
 *   dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)),  dw += dy ⊙ x̂,  db += dy. */
AIM_VECTOR_CLONES
static void layernorm_bwd_row(float *dx, float *dw, float *db, const float *dy,
			      const float *x, const float *w, float mu, float rs, int D)
{
	float sg = 0.0f, sgx = 0.0f;
	#pragma omp simd reduction(+ : sg, sgx)
	for (int j = 0; j < D; j++) {
		float xh = (x[j] - mu) * rs;
		float g = dy[j] * w[j];
		sg += g;
		sgx += g * xh;
	}
	sg /= D;
	sgx /= D;
	if (dx) {
		#pragma omp simd
		for (int j = 0; j < D; j++) {
			float xh = (x[j] - mu) * rs;
			dx[j] += rs * (dy[j] * w[j] - sg - xh * sgx);
		}
	}
	if (dw) {
		#pragma omp simd
		for (int j = 0; j < D; j++)
			dw[j] += dy[j] * (x[j] - mu) * rs;
	}
	if (db) {
		#pragma omp simd
		for (int j = 0; j < D; j++)
			db[j] += dy[j];
	}
}

void aim_layernorm_bwd(float *dx, float *dw, float *db, const float *dy,
		       const float *x, const float *w, const float *mean,
		       const float *rstd, int M, int D)
{
	/* Each thread sums dw, db over its rows in a private buffer; the
	 * buffers are added at the end (no atomics, fixed order per thread
	 * count). */
	int nt = omp_get_max_threads();
	float *part = calloc((size_t)nt * 2 * D, sizeof(float));
	#pragma omp parallel
	{
		int t = omp_get_thread_num();
		float *pw = part ? part + (size_t)t * 2 * D : NULL;
		float *pb = pw ? pw + D : NULL;
		#pragma omp for schedule(static)
		for (int i = 0; i < M; i++)
			layernorm_bwd_row(dx ? dx + (size_t)i * D : NULL, dw && pw ? pw : NULL,
					  db && pb ? pb : NULL, dy + (size_t)i * D,
					  x + (size_t)i * D, w, mean[i], rstd[i], D);
	}
	if (part) {
		for (int t = 0; t < nt; t++) {
			const float *pw = part + (size_t)t * 2 * D;
			for (int j = 0; j < D; j++) {
				if (dw)
					dw[j] += pw[j];
				if (db)
					db[j] += pw[D + j];
			}
		}
	} else if (dw || db) { /* out of memory for the partials: one thread */
		for (int i = 0; i < M; i++)
			layernorm_bwd_row(NULL, dw, db, dy + (size_t)i * D, x + (size_t)i * D, w,
					  mean[i], rstd[i], D);
	}
	free(part);
}
