/* The attentive head's attention pooling, forward and backward: queries
 * folded through the key projection, W_v after pooling (probe_head.h). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gemm.h"
#include "probe_head.h"
#include "probe_parts.h"

/* ---- attention pooling ----------------------------------------------- */

void aim_head_cache_free(aim_head_cache *c)
{
	free(c->keyvec);
	free(c->attn);
	free(c->pool);
	free(c->z);
	memset(c, 0, sizeof *c);
}

int aim_head_cache_reserve(aim_head_cache *c, const aim_head_config *cfg, int64_t B, int64_t K)
{
	int64_t QH = (int64_t)cfg->queries * cfg->heads, D = cfg->dim;
	if (!c->keyvec) {
		c->keyvec = malloc((size_t)(QH ? QH : 1) * D * sizeof(float));
		if (!c->keyvec)
			return aim_error("head: out of memory");
	}
	if (B * K > c->cap_bk) {
		free(c->attn);
		c->attn = malloc((size_t)(QH ? QH : 1) * B * K * sizeof(float));
		c->cap_bk = c->attn ? B * K : 0;
		if (!c->attn)
			return aim_error("head: out of memory for %lld tokens", (long long)(B * K));
	}
	if (B > c->cap_b) {
		free(c->pool);
		free(c->z);
		c->pool = malloc((size_t)(QH ? QH : 1) * B * D * sizeof(float));
		c->z = malloc((size_t)B * D * sizeof(float));
		c->cap_b = c->pool && c->z ? B : 0;
		if (!c->pool || !c->z)
			return aim_error("head: out of memory for a batch of %lld", (long long)B);
	}
	c->B = B;
	c->K = K;
	return AIM_OK;
}

/* keyvec[q·H + h] = (W_k,hᵀ q_qh) / √hd: the query folded through the key
 * projection, so scores are plain dot products with the tokens. */
static void keyvec_fwd(const aim_head *h, float *kv)
{
	int D = h->cfg.dim, H = h->cfg.heads, Q = h->cfg.queries, hd = D / H;
	float scale = (float)(1.0 / sqrt((double)hd));
	for (int q = 0; q < Q; q++)
		for (int hh = 0; hh < H; hh++)
			/* kv = scale · W_k[h rows]ᵀ · cls[q, h slice] */
			cblas_sgemv(CblasRowMajor, CblasTrans, hd, D, scale,
				    h->wk + (size_t)hh * hd * D, D,
				    h->cls_token + (size_t)q * D + (size_t)hh * hd, 1, 0.0f,
				    kv + ((size_t)q * H + hh) * D, 1);
}

/* dW_k[h rows] += scale · cls[q, h]ᵀ ⊗ dkv ; dcls[q, h] += scale · W_k[h rows] · dkv */
static void keyvec_bwd(const aim_head *h, const float *dkv, float *dcls, float *dwk)
{
	int D = h->cfg.dim, H = h->cfg.heads, Q = h->cfg.queries, hd = D / H;
	float scale = (float)(1.0 / sqrt((double)hd));
	for (int q = 0; q < Q; q++)
		for (int hh = 0; hh < H; hh++) {
			const float *g = dkv + ((size_t)q * H + hh) * D;
			const float *cq = h->cls_token + (size_t)q * D + (size_t)hh * hd;
			cblas_sger(CblasRowMajor, hd, D, scale, cq, 1, g, 1,
				   dwk + (size_t)hh * hd * D, D);
			cblas_sgemv(CblasRowMajor, CblasNoTrans, hd, D, scale,
				    h->wk + (size_t)hh * hd * D, D, g, 1, 1.0f,
				    dcls + (size_t)q * D + (size_t)hh * hd, 1);
		}
}

static void softmax_rows(float *s, int64_t rows, int64_t n)
{
#pragma omp parallel for schedule(static) if (rows * n > AIM_PAR_MIN)
	for (int64_t r = 0; r < rows; r++) {
		float *p = s + r * n;
		float mx = p[0];
		for (int64_t i = 1; i < n; i++)
			if (p[i] > mx)
				mx = p[i];
		double sum = 0;
		for (int64_t i = 0; i < n; i++) {
			p[i] = expf(p[i] - mx);
			sum += p[i];
		}
		float inv = (float)(1.0 / sum);
		for (int64_t i = 0; i < n; i++)
			p[i] *= inv;
	}
}

/* From normalised tokens to pooled z [B, D] (attentive), filling the cache.
 * Layouts: attn [QH, B·K] (row qh, then sample b's K tokens), pool
 * [B, Q, H, D], output o [B·Q, D] before the mean over queries. */
/* bn_mean/bn_rstd non-NULL: the tokens are raw and the BatchNorm is folded
 * in (inference). Scores on x̂ = (x − μ)·r equal scores on x with the key
 * vector scaled by r, less a constant per (query, head) that the softmax
 * ignores; and since the weights sum to one, Σ a_i x̂_i = r ⊙ (Σ a_i x_i − μ).
 * So the normalised tokens are never written. */
int aim_head_attentive_fwd(const aim_head *h, aim_head_cache *c, const float *xhat,
			   int64_t B, int64_t K, float *z, const float *bn_mean,
			      const float *bn_rstd)
{
	const aim_head_config *cfg = &h->cfg;
	int D = cfg->dim, H = cfg->heads, Q = cfg->queries, hd = D / H, QH = Q * H;
	int64_t BK = B * K;
	keyvec_fwd(h, c->keyvec);
	if (bn_rstd)
		for (int r = 0; r < QH; r++)
			for (int d = 0; d < D; d++)
				c->keyvec[(size_t)r * D + d] *= bn_rstd[d];
	/* scores [QH, B·K] = keyvec · x̂ᵀ, then softmax over each sample's K */
	aim_sgemm(0, 1, QH, (int)BK, D, 1.0f,
		    c->keyvec, D, xhat, D, 0.0f, c->attn, (int)BK);
	softmax_rows(c->attn, (int64_t)QH * B, K);
	/* pool[b] [QH, D] = A_b [QH, K] · x̂_b [K, D] */
	for (int64_t b = 0; b < B; b++)
		aim_sgemm(0, 0, QH, D, (int)K, 1.0f,
			    c->attn + b * K, (int)BK, xhat + b * K * D, D, 0.0f,
			    c->pool + b * QH * D, D);
	if (bn_rstd) {
		int64_t rows = B * QH;
#pragma omp parallel for schedule(static) if (rows * D > AIM_PAR_MIN)
		for (int64_t r = 0; r < rows; r++)
			for (int d = 0; d < D; d++)
				c->pool[r * D + d] = (c->pool[r * D + d] - bn_mean[d]) * bn_rstd[d];
	}
	/* o[b, q, h slice] = W_v,h · pool[b, q, h]: per head one GEMM over B·Q rows */
	float *o = malloc((size_t)B * Q * D * sizeof(float));
	if (!o)
		return aim_error("head: out of memory");
	for (int hh = 0; hh < H; hh++)
		aim_sgemm(0, 1, (int)(B * Q), hd, D, 1.0f,
			    c->pool + (size_t)hh * D, H * D, h->wv + (size_t)hh * hd * D, D, 0.0f,
			    o + (size_t)hh * hd, D);
	for (int64_t b = 0; b < B; b++)
		for (int d = 0; d < D; d++) {
			double s = 0;
			for (int q = 0; q < Q; q++)
				s += o[(b * Q + q) * D + d];
			z[b * D + d] = (float)(s / Q);
		}
	free(o);
	return AIM_OK;
}

/* Backward of aim_head_attentive_fwd from dz [B, D]. */
int aim_head_attentive_bwd(const aim_head *h, const aim_head_cache *c, const float *xhat,
			   const float *dz, float *grad, float *dxhat)
{
	const aim_head_config *cfg = &h->cfg;
	int D = cfg->dim, H = cfg->heads, Q = cfg->queries, hd = D / H, QH = Q * H;
	int64_t B = c->B, K = c->K, BK = B * K;
	float *dcls = grad + (h->cls_token - h->params);
	float *dwk = grad + (h->wk - h->params);
	float *dwv = grad + (h->wv - h->params);
	float *dout = malloc((size_t)B * Q * D * sizeof(float));
	float *dpool = malloc((size_t)B * QH * D * sizeof(float));
	float *ds = malloc((size_t)QH * BK * sizeof(float));
	float *dkv = malloc((size_t)QH * D * sizeof(float));
	if (!dout || !dpool || !ds || !dkv) {
		free(dout), free(dpool), free(ds), free(dkv);
		return aim_error("head: out of memory");
	}
	/* the mean over queries spreads dz evenly */
	for (int64_t b = 0; b < B; b++)
		for (int q = 0; q < Q; q++)
			for (int d = 0; d < D; d++)
				dout[(b * Q + q) * D + d] = dz[b * D + d] / (float)Q;
	for (int hh = 0; hh < H; hh++) {
		/* dW_v,h += dout_hᵀ · pool_h ; dpool_h = dout_h · W_v,h */
		aim_sgemm(1, 0, hd, D, (int)(B * Q), 1.0f,
			    dout + (size_t)hh * hd, D, c->pool + (size_t)hh * D, H * D, 1.0f,
			    dwv + (size_t)hh * hd * D, D);
		aim_sgemm(0, 0, (int)(B * Q), D, hd, 1.0f,
			    dout + (size_t)hh * hd, D, h->wv + (size_t)hh * hd * D, D, 0.0f,
			    dpool + (size_t)hh * D, H * D);
	}
	/* dA_b [QH, K] = dpool_b · x̂_bᵀ ; then through the softmax */
	for (int64_t b = 0; b < B; b++)
		aim_sgemm(0, 1, QH, (int)K, D, 1.0f,
			    dpool + b * QH * D, D, xhat + b * K * D, D, 0.0f, ds + b * K, (int)BK);
#pragma omp parallel for schedule(static) if (QH * BK > AIM_PAR_MIN)
	for (int64_t r = 0; r < (int64_t)QH * B; r++) {
		int64_t qh = r / B, b = r % B;
		const float *a = c->attn + qh * BK + b * K;
		float *g = ds + qh * BK + b * K;
		double dot = 0;
		for (int64_t i = 0; i < K; i++)
			dot += (double)a[i] * g[i];
		for (int64_t i = 0; i < K; i++)
			g[i] = a[i] * (g[i] - (float)dot);
	}
	/* dkeyvec [QH, D] = dS · x̂ */
	aim_sgemm(0, 0, QH, D, (int)BK, 1.0f, ds, (int)BK,
		    xhat, D, 0.0f, dkv, D);
	keyvec_bwd(h, dkv, dcls, dwk);
	if (dxhat) {
		/* dx̂_b += A_bᵀ · dpool_b (values) ; dx̂ += dSᵀ · keyvec (keys) */
		for (int64_t b = 0; b < B; b++)
			aim_sgemm(1, 0, (int)K, D, QH, 1.0f,
				    c->attn + b * K, (int)BK, dpool + b * QH * D, D, 1.0f,
				    dxhat + b * K * D, D);
		aim_sgemm(1, 0, (int)BK, D, QH, 1.0f, ds,
			    (int)BK, c->keyvec, D, 1.0f, dxhat, D);
	}
	free(dout), free(dpool), free(ds), free(dkv);
	return AIM_OK;
}

