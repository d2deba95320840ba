/* The probe heads' BatchNorm (affine = False): training statistics,
 * running statistics as PyTorch keeps them, backward (probe_head.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "err.h"
#include "probe_head.h"
#include "probe_parts.h"

/* ---- BatchNorm (affine = False) ---------------------------------------- */

/* Column sums of M rows of D (and of the products a·b when b is given),
 * walking rows in memory order: per-thread partial sums in double, added
 * in thread order so the result does not depend on timing. */
static int column_sums(const float *a, const float *b, int64_t M, int D, double *sa, double *sab)
{
	int nt = M * D > AIM_PAR_MIN ? omp_get_max_threads() : 1;
	double *part = calloc((size_t)nt * 2 * D, sizeof(double));
	if (!part)
		return aim_error("head: out of memory");
#pragma omp parallel num_threads(nt)
	{
		double *pa = part + (size_t)omp_get_thread_num() * 2 * D, *pab = pa + D;
#pragma omp for schedule(static)
		for (int64_t i = 0; i < M; i++) {
			const float *ra = a + i * D, *rb = b ? b + i * D : NULL;
			for (int d = 0; d < D; d++) {
				pa[d] += ra[d];
				if (rb)
					pab[d] += (double)ra[d] * rb[d];
			}
		}
	}
	for (int d = 0; d < D; d++) {
		double x = 0, y = 0;
		for (int t = 0; t < nt; t++) {
			x += part[(size_t)t * 2 * D + d];
			y += part[(size_t)t * 2 * D + D + d];
		}
		sa[d] = x;
		if (sab)
			sab[d] = y;
	}
	free(part);
	return AIM_OK;
}

void aim_head_bn_train_fwd(aim_head *h, float *xhat, float *mean, float *rstd,
			   const float *x, int64_t M)
{
	int D = h->cfg.dim;
	double eps = h->cfg.bn_eps, mom = h->cfg.bn_momentum;
	double *s1 = malloc(sizeof(double) * 2 * (size_t)D), *s2 = s1 ? s1 + D : NULL;
	if (!s1 || column_sums(x, NULL, M, D, s1, NULL)) {
		/* no memory for the partial sums: one column at a time */
		for (int d = 0; d < D; d++) {
			double a = 0;
			for (int64_t i = 0; i < M; i++)
				a += x[i * D + d];
			mean[d] = (float)(a / (double)M);
		}
	} else {
		for (int d = 0; d < D; d++)
			mean[d] = (float)(s1[d] / (double)M);
	}
	/* second pass on the centred values: no cancellation in the variance */
#pragma omp parallel for schedule(static) if (M * D > AIM_PAR_MIN)
	for (int64_t i = 0; i < M; i++)
		for (int d = 0; d < D; d++)
			xhat[i * D + d] = x[i * D + d] - mean[d];
	if (!s1 || column_sums(xhat, xhat, M, D, s1, s2)) {
		free(s1);
		s1 = calloc(2 * (size_t)D, sizeof(double));
		s2 = s1 + D; /* calloc failing here leaves nothing sane to do */
		for (int64_t i = 0; i < M; i++)
			for (int d = 0; d < D; d++)
				s2[d] += (double)xhat[i * D + d] * xhat[i * D + d];
	}
	for (int d = 0; d < D; d++) {
		double var = s2[d] / (double)M;
		rstd[d] = (float)(1.0 / sqrt(var + eps));
		double unbiased = M > 1 ? s2[d] / (double)(M - 1) : var;
		h->running_mean[d] = (float)((1 - mom) * h->running_mean[d] + mom * mean[d]);
		h->running_var[d] = (float)((1 - mom) * h->running_var[d] + mom * unbiased);
	}
	free(s1);
	h->batches_tracked++;
#pragma omp parallel for schedule(static) if (M * D > AIM_PAR_MIN)
	for (int64_t i = 0; i < M; i++)
		for (int d = 0; d < D; d++)
			xhat[i * D + d] *= rstd[d];
}

/* dx = rstd · (dxhat − mean(dxhat) − xhat · mean(dxhat ⊙ xhat)), means over
 * the M rows: the gradient through batch statistics. */
void aim_head_bn_bwd(float *dx, const float *dxhat, const float *xhat,
		     const float *rstd, int64_t M, int D)
{
	double *m1 = malloc(sizeof(double) * 2 * (size_t)D), *m2 = m1 ? m1 + D : NULL;
	if (!m1 || column_sums(dxhat, xhat, M, D, m1, m2)) {
		free(m1);
		return; /* out of memory: leaves dx untouched (test-only path) */
	}
	for (int d = 0; d < D; d++)
		m1[d] /= (double)M, m2[d] /= (double)M;
#pragma omp parallel for schedule(static) if (M * D > AIM_PAR_MIN)
	for (int64_t i = 0; i < M; i++)
		for (int d = 0; d < D; d++)
			dx[i * D + d] += (float)(rstd[d] * (dxhat[i * D + d] - m1[d] -
							     xhat[i * D + d] * m2[d]));
	free(m1);
}

void aim_head_bn_eval_fwd(const aim_head *h, float *xhat, const float *x, int64_t M)
{
	int D = h->cfg.dim;
	float *rs = malloc((size_t)D * sizeof(float));
	if (!rs) { /* tiny; fall back to computing inline */
		for (int64_t i = 0; i < M; i++)
			for (int d = 0; d < D; d++)
				xhat[i * D + d] = (float)((x[i * D + d] - h->running_mean[d]) /
							  sqrt((double)h->running_var[d] + h->cfg.bn_eps));
		return;
	}
	for (int d = 0; d < D; d++)
		rs[d] = (float)(1.0 / sqrt((double)h->running_var[d] + h->cfg.bn_eps));
#pragma omp parallel for schedule(static) if (M * D > AIM_PAR_MIN)
	for (int64_t i = 0; i < M; i++)
		for (int d = 0; d < D; d++)
			xhat[i * D + d] = (x[i * D + d] - h->running_mean[d]) * rs[d];
	free(rs);
}

