/* RMSNorm over the last dimension (AIMv2 uses eps 1e-5 everywhere), as
 * torch.nn.RMSNorm with a weight and no bias. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "ops.h"
#include "ops_math.h"

AIM_VECTOR_CLONES
static void rmsnorm_row(float *y, float *rstd_out, const float *x, const float *w, int D,
			float eps)
{
	float s = 0.0f;
	#pragma omp simd reduction(+ : s)
	for (int j = 0; j < D; j++)
		s += x[j] * x[j];
	float rs = 1.0f / sqrtf(s / D + eps);
	#pragma omp simd
	for (int j = 0; j < D; j++)
		y[j] = x[j] * rs * w[j];
	if (rstd_out)
		*rstd_out = rs;
}

void aim_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int M, int D,
		     float eps)
{
	#pragma omp parallel for schedule(static)
	for (int i = 0; i < M; i++)
		rmsnorm_row(y + (size_t)i * D, rstd ? rstd + i : NULL, x + (size_t)i * D, w, D, eps);
}

/* With x̂ = x·rstd and g = dy ⊙ w:
 *   dx = rstd · (g − x̂ · mean(g ⊙ x̂)),  dw += dy ⊙ x̂. */
AIM_VECTOR_CLONES
static void rmsnorm_bwd_row(float *dx, float *dw, const float *dy, const float *x,
			    const float *w, float rs, int D)
{
	if (dx) {
		float sgx = 0.0f;
		#pragma omp simd reduction(+ : sgx)
		for (int j = 0; j < D; j++)
			sgx += dy[j] * w[j] * x[j] * rs;
		sgx /= D;
		#pragma omp simd
		for (int j = 0; j < D; j++)
			dx[j] += rs * (dy[j] * w[j] - x[j] * rs * sgx);
	}
	if (dw) {
		#pragma omp simd
		for (int j = 0; j < D; j++)
			dw[j] += dy[j] * x[j] * rs;
	}
}

void aim_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
		     const float *rstd, int M, int D)
{
	/* dw: per-thread partial sums added at the end in thread order (no
	 * atomics), as the LayerNorm backward does. */
	int nt = omp_get_max_threads();
	float *part = dw ? calloc((size_t)nt * D, sizeof(float)) : NULL;
	#pragma omp parallel
	{
		float *pw = part ? part + (size_t)omp_get_thread_num() * D : NULL;
		#pragma omp for schedule(static)
		for (int i = 0; i < M; i++)
			rmsnorm_bwd_row(dx ? dx + (size_t)i * D : NULL, pw, dy + (size_t)i * D,
					x + (size_t)i * D, w, rstd[i], D);
	}
	if (part) {
		for (int t = 0; t < nt; t++)
			for (int j = 0; j < D; j++)
				dw[j] += part[(size_t)t * D + j];
	} else if (dw) { /* out of memory for the partials: one thread */
		for (int i = 0; i < M; i++)
			rmsnorm_bwd_row(NULL, dw, dy + (size_t)i * D, x + (size_t)i * D, w, rstd[i], D);
	}
	free(part);
}
