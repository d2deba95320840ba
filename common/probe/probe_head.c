/* Probe heads: attentive (AIM v1) and linear; forward and backward side by
 * side. The maths is spelled out in probe_head.h. */
#include "probe_head.h"
#include "train_optim.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <omp.h>

#include "err.h"
#include "tensor.h"

/* Loops over fewer elements than this stay on one thread: waking the
 * OpenMP team costs more than the work, and idle workers spinning between
 * regions steal time from the BLAS threads on a busy machine. */
#define AIM_PAR_MIN 65536

/* ---- configuration, allocation, initialisation ------------------------- */

void aim_head_config_default(aim_head_config *c, aim_probe_kind kind, int dim,
			     int classes, int heads)
{
	memset(c, 0, sizeof *c);
	c->kind = kind;
	c->dim = dim;
	c->classes = classes;
	c->heads = kind == AIM_PROBE_ATTENTIVE ? heads : 0;
	c->queries = kind == AIM_PROBE_ATTENTIVE ? 1 : 0;
	c->linear_bias = 0;
	c->bn_eps = 1e-6f;
	c->bn_momentum = 0.1f;
}

static int check_config(const aim_head_config *c)
{
	if (c->dim <= 0 || c->classes <= 0)
		return aim_error("head: bad dimension %d or class count %d", c->dim, c->classes);
	if (c->kind == AIM_PROBE_ATTENTIVE) {
		if (c->heads <= 0 || c->dim % c->heads)
			return aim_error("head: %d heads do not divide the dimension %d",
					 c->heads, c->dim);
		if (c->queries <= 0)
			return aim_error("head: %d queries", c->queries);
	}
	return AIM_OK;
}

/* Point the named parameters into the arena (layout in probe_head.h). */
static void point_params(aim_head *h, float *base)
{
	const aim_head_config *c = &h->cfg;
	size_t D = (size_t)c->dim, off = 0;
	h->cls_token = h->wk = h->wv = h->blin = NULL;
	if (c->kind == AIM_PROBE_ATTENTIVE) {
		h->cls_token = base + off, off += (size_t)c->queries * D;
		h->wk = base + off, off += D * D;
		h->wv = base + off, off += D * D;
	}
	h->wlin = base + off, off += (size_t)c->classes * D;
	if (c->linear_bias)
		h->blin = base + off, off += (size_t)c->classes;
	h->nparams = off;
}

static int alloc_head(aim_head *h, const aim_head_config *cfg)
{
	memset(h, 0, sizeof *h);
	if (check_config(cfg))
		return AIM_ERR;
	h->cfg = *cfg;
	point_params(h, NULL);
	size_t n = h->nparams;
	h->params = calloc(n ? n : 1, sizeof(float));
	h->running_mean = calloc((size_t)cfg->dim, sizeof(float));
	h->running_var = malloc((size_t)cfg->dim * sizeof(float));
	if (!h->params || !h->running_mean || !h->running_var) {
		aim_head_free(h);
		return aim_error("head: out of memory");
	}
	point_params(h, h->params);
	for (int i = 0; i < cfg->dim; i++)
		h->running_var[i] = 1.0f;
	return AIM_OK;
}

void aim_head_free(aim_head *h)
{
	free(h->params);
	free(h->running_mean);
	free(h->running_var);
	memset(h, 0, sizeof *h);
}

/* splitmix64: small, seedable, good enough for initial weights. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}
static double rng_uniform(uint64_t *s) { return (rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }
static double rng_normal(uint64_t *s)
{
	double u1 = rng_uniform(s), u2 = rng_uniform(s);
	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int aim_head_init(aim_head *h, const aim_head_config *cfg, uint64_t seed)
{
	if (alloc_head(h, cfg))
		return AIM_ERR;
	uint64_t s = seed ^ 0x5EEDF00Dull;
	size_t D = (size_t)cfg->dim;
	double bound = 1.0 / sqrt((double)D);
	if (h->cls_token)
		for (size_t i = 0; i < (size_t)cfg->queries * D; i++)
			h->cls_token[i] = (float)(0.02 * rng_normal(&s));
	if (h->wk)
		for (size_t i = 0; i < D * D; i++) {
			h->wk[i] = (float)(bound * (2 * rng_uniform(&s) - 1));
			h->wv[i] = (float)(bound * (2 * rng_uniform(&s) - 1));
		}
	for (size_t i = 0; i < (size_t)cfg->classes * D; i++)
		h->wlin[i] = (float)(bound * (2 * rng_uniform(&s) - 1));
	if (h->blin)
		for (int i = 0; i < cfg->classes; i++)
			h->blin[i] = (float)(bound * (2 * rng_uniform(&s) - 1));
	return AIM_OK;
}

int aim_head_copy(aim_head *dst, const aim_head *src)
{
	if (alloc_head(dst, &src->cfg))
		return AIM_ERR;
	memcpy(dst->params, src->params, src->nparams * sizeof(float));
	memcpy(dst->running_mean, src->running_mean, (size_t)src->cfg.dim * sizeof(float));
	memcpy(dst->running_var, src->running_var, (size_t)src->cfg.dim * sizeof(float));
	dst->batches_tracked = src->batches_tracked;
	return AIM_OK;
}

/* ---- loading and saving ---------------------------------------------- */

static const aim_tensor *need(const aim_record *r, const char *name, int ndim,
			      const int64_t *shape, const char *what)
{
	const aim_tensor *t = aim_record_find(r, name);
	char a[96], b[96];
	if (!t) {
		aim_error("%s: no tensor '%s'", what, name);
		return NULL;
	}
	if (t->dtype != AIM_F32 && t->dtype != AIM_F16 && t->dtype != AIM_BF16) {
		aim_error("%s: tensor '%s' is %s, not a float type", what, name,
			  aim_dtype_name(t->dtype));
		return NULL;
	}
	int ok = t->ndim == ndim;
	for (int d = 0; ok && d < ndim; d++)
		ok = shape[d] < 0 || t->shape[d] == shape[d];
	if (!ok) {
		aim_error("%s: tensor '%s' has shape %s, expected %s", what, name,
			  aim_shape_str(t->ndim, t->shape, a, sizeof a),
			  aim_shape_str(ndim, shape, b, sizeof b));
		return NULL;
	}
	return t;
}

int aim_head_load(aim_head *h, const aim_record *r, int heads_hint, const char *what)
{
	const aim_tensor *lin = need(r, "head.linear.weight", 2, (int64_t[]){-1, -1}, what);
	if (!lin)
		return AIM_ERR;
	int C = (int)lin->shape[0], D = (int)lin->shape[1];
	int attentive = aim_record_find(r, "head.k.weight") != NULL;
	int heads = 0, queries = 1;
	const char *meta = aim_record_get_meta(r, "aim.head");
	if (meta) {
		json_error_t je;
		json_t *j = json_loads(meta, 0, &je);
		if (!j || !json_is_object(j)) {
			json_decref(j);
			return aim_error("%s: metadata aim.head is not a JSON object", what);
		}
		json_t *v = json_object_get(j, "heads");
		if (json_is_integer(v))
			heads = (int)json_integer_value(v);
		json_decref(j);
	}
	if (heads <= 0 && heads_hint > 0)
		heads = heads_hint;
	aim_head_config cfg;
	aim_head_config_default(&cfg, attentive ? AIM_PROBE_ATTENTIVE : AIM_PROBE_LINEAR, D, C, 0);
	const aim_tensor *cls = NULL, *tk = NULL, *tv = NULL;
	if (attentive) {
		cls = need(r, "head.cls_token", 3, (int64_t[]){1, -1, D}, what);
		tk = need(r, "head.k.weight", 2, (int64_t[]){D, D}, what);
		tv = need(r, "head.v.weight", 2, (int64_t[]){D, D}, what);
		if (!cls || !tk || !tv)
			return AIM_ERR;
		if (aim_record_find(r, "head.k.bias") || aim_record_find(r, "head.v.bias"))
			return aim_error("%s: head.k/head.v biases are not supported "
					 "(the published heads have none)", what);
		queries = (int)cls->shape[1];
		if (heads <= 0) {
			if (D % 128)
				return aim_error("%s: the number of attention heads is not "
						 "recorded; give it with --heads", what);
			heads = D / 128;
		}
		cfg.heads = heads;
		cfg.queries = queries;
	}
	const aim_tensor *rm = need(r, "head.bn.running_mean", 1, (int64_t[]){D}, what);
	const aim_tensor *rv = need(r, "head.bn.running_var", 1, (int64_t[]){D}, what);
	if (!rm || !rv)
		return AIM_ERR;
	const aim_tensor *bias = aim_record_find(r, "head.linear.bias");
	if (bias && !need(r, "head.linear.bias", 1, (int64_t[]){C}, what))
		return AIM_ERR;
	cfg.linear_bias = bias != NULL;
	if (alloc_head(h, &cfg))
		return aim_error_prefix("%s", what);
	if (attentive) {
		aim_to_f32(h->cls_token, cls);
		aim_to_f32(h->wk, tk);
		aim_to_f32(h->wv, tv);
	}
	aim_to_f32(h->wlin, lin);
	if (bias)
		aim_to_f32(h->blin, bias);
	aim_to_f32(h->running_mean, rm);
	aim_to_f32(h->running_var, rv);
	const aim_tensor *nb = aim_record_find(r, "head.bn.num_batches_tracked");
	if (nb && nb->dtype == AIM_I64 && nb->nbytes == 8)
		memcpy(&h->batches_tracked, nb->data, 8);
	return AIM_OK;
}

int aim_head_to_record(const aim_head *h, aim_record *r)
{
	const aim_head_config *c = &h->cfg;
	int64_t D = c->dim, C = c->classes, Q = c->queries;
	int ok = aim_record_add_ref(r, "head.bn.running_mean", AIM_F32, 1, &D, h->running_mean) &&
		 aim_record_add_ref(r, "head.bn.running_var", AIM_F32, 1, &D, h->running_var) &&
		 aim_record_add_ref(r, "head.bn.num_batches_tracked", AIM_I64, 0, &D,
				    (void *)&h->batches_tracked); /* a scalar: shape unread */
	if (ok && c->kind == AIM_PROBE_ATTENTIVE)
		ok = aim_record_add_ref(r, "head.cls_token", AIM_F32, 3, (int64_t[]){1, Q, D},
					h->cls_token) &&
		     aim_record_add_ref(r, "head.k.weight", AIM_F32, 2, (int64_t[]){D, D}, h->wk) &&
		     aim_record_add_ref(r, "head.v.weight", AIM_F32, 2, (int64_t[]){D, D}, h->wv);
	if (ok)
		ok = aim_record_add_ref(r, "head.linear.weight", AIM_F32, 2, (int64_t[]){C, D},
					h->wlin) != NULL;
	if (ok && h->blin)
		ok = aim_record_add_ref(r, "head.linear.bias", AIM_F32, 1, &C, h->blin) != NULL;
	if (!ok)
		return AIM_ERR;
	char buf[256];
	if (c->kind == AIM_PROBE_ATTENTIVE)
		snprintf(buf, sizeof buf,
			 "{\"probe\":\"attentive\",\"dim\":%d,\"classes\":%d,\"heads\":%d,\"queries\":%d}",
			 c->dim, c->classes, c->heads, c->queries);
	else
		snprintf(buf, sizeof buf, "{\"probe\":\"linear\",\"dim\":%d,\"classes\":%d}",
			 c->dim, c->classes);
	return aim_record_set_meta(r, "aim.head", buf);
}

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

/* ---- attention pooling ----------------------------------------------- */

void aim_head_cache_free(aim_head_cache *c)
{
	free(c->keyvec);
	free(c->attn);
	free(c->pool);
	free(c->z);
	memset(c, 0, sizeof *c);
}

static int cache_reserve(aim_head_cache *c, const aim_head_config *cfg, int64_t B, int64_t K)
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
static int attentive_pool_fwd(const aim_head *h, aim_head_cache *c, const float *xhat,
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
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, QH, (int)BK, D, 1.0f,
		    c->keyvec, D, xhat, D, 0.0f, c->attn, (int)BK);
	softmax_rows(c->attn, (int64_t)QH * B, K);
	/* pool[b] [QH, D] = A_b [QH, K] · x̂_b [K, D] */
	for (int64_t b = 0; b < B; b++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, QH, D, (int)K, 1.0f,
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
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(B * Q), hd, D, 1.0f,
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

/* Backward of attentive_pool_fwd from dz [B, D]. */
static int attentive_pool_bwd(const aim_head *h, const aim_head_cache *c, const float *xhat,
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
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hd, D, (int)(B * Q), 1.0f,
			    dout + (size_t)hh * hd, D, c->pool + (size_t)hh * D, H * D, 1.0f,
			    dwv + (size_t)hh * hd * D, D);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(B * Q), D, hd, 1.0f,
			    dout + (size_t)hh * hd, D, h->wv + (size_t)hh * hd * D, D, 0.0f,
			    dpool + (size_t)hh * D, H * D);
	}
	/* dA_b [QH, K] = dpool_b · x̂_bᵀ ; then through the softmax */
	for (int64_t b = 0; b < B; b++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, QH, (int)K, D, 1.0f,
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
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, QH, D, (int)BK, 1.0f, ds, (int)BK,
		    xhat, D, 0.0f, dkv, D);
	keyvec_bwd(h, dkv, dcls, dwk);
	if (dxhat) {
		/* dx̂_b += A_bᵀ · dpool_b (values) ; dx̂ += dSᵀ · keyvec (keys) */
		for (int64_t b = 0; b < B; b++)
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, D, QH, 1.0f,
				    c->attn + b * K, (int)BK, dpool + b * QH * D, D, 1.0f,
				    dxhat + b * K * D, D);
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)BK, D, QH, 1.0f, ds,
			    (int)BK, c->keyvec, D, 1.0f, dxhat, D);
	}
	free(dout), free(dpool), free(ds), free(dkv);
	return AIM_OK;
}

/* ---- the linear classifier ------------------------------------------- */

static void classifier_fwd(const aim_head *h, const float *z, int64_t B, float *logits)
{
	int D = h->cfg.dim, C = h->cfg.classes;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, C, D, 1.0f, z, D, h->wlin, D,
		    0.0f, logits, C);
	if (h->blin)
		for (int64_t b = 0; b < B; b++)
			for (int j = 0; j < C; j++)
				logits[b * C + j] += h->blin[j];
}

/* dW_lin += dlogitsᵀ · z ; db += Σ dlogits ; dz = dlogits · W_lin */
static void classifier_bwd(const aim_head *h, const float *z, int64_t B, const float *dlogits,
			   float *grad, float *dz)
{
	int D = h->cfg.dim, C = h->cfg.classes;
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, D, (int)B, 1.0f, dlogits, C, z, D,
		    1.0f, grad + (h->wlin - h->params), D);
	if (h->blin) {
		float *db = grad + (h->blin - h->params);
		for (int64_t b = 0; b < B; b++)
			for (int j = 0; j < C; j++)
				db[j] += dlogits[b * C + j];
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, D, C, 1.0f, dlogits, C,
		    h->wlin, D, 0.0f, dz, D);
}

/* ---- whole head ------------------------------------------------------ */

static void mean_tokens(float *out, const float *x, int64_t B, int64_t K, int D)
{
#pragma omp parallel for schedule(static) if (B * K * D > AIM_PAR_MIN)
	for (int64_t b = 0; b < B; b++)
		for (int d = 0; d < D; d++) {
			double s = 0;
			for (int64_t i = 0; i < K; i++)
				s += x[(b * K + i) * D + d];
			out[b * D + d] = (float)(s / (double)K);
		}
}

int aim_head_forward(const aim_head *h, const float *x, int64_t B, int64_t K,
		     float *pooled, float *logits)
{
	int D = h->cfg.dim;
	if (B <= 0)
		return AIM_OK;
	if (K <= 0)
		return aim_error("head: no tokens");
	float *xhat = h->cfg.kind == AIM_PROBE_LINEAR ? malloc((size_t)B * D * sizeof(float)) : NULL;
	float *z = pooled ? pooled : malloc((size_t)B * D * sizeof(float));
	float *rs = malloc((size_t)D * sizeof(float));
	if ((h->cfg.kind == AIM_PROBE_LINEAR && !xhat) || !z || !rs) {
		free(xhat), free(rs);
		if (z != pooled)
			free(z);
		return aim_error("head: out of memory for a batch of %lld", (long long)B);
	}
	int rc = AIM_OK;
	if (h->cfg.kind == AIM_PROBE_ATTENTIVE) {
		for (int d = 0; d < D; d++)
			rs[d] = (float)(1.0 / sqrt((double)h->running_var[d] + h->cfg.bn_eps));
		aim_head_cache c = {0};
		rc = cache_reserve(&c, &h->cfg, B, K);
		if (!rc)
			rc = attentive_pool_fwd(h, &c, x, B, K, z, h->running_mean, rs);
		aim_head_cache_free(&c);
	} else {
		mean_tokens(xhat, x, B, K, D);
		aim_head_bn_eval_fwd(h, z, xhat, B);
	}
	if (!rc && logits)
		classifier_fwd(h, z, B, logits);
	free(xhat), free(rs);
	if (z != pooled)
		free(z);
	return rc;
}

int aim_head_forward_train(const aim_head *h, aim_head_cache *c, const float *xhat,
			   int64_t B, int64_t K, float *logits)
{
	if (cache_reserve(c, &h->cfg, B, K))
		return AIM_ERR;
	if (h->cfg.kind == AIM_PROBE_ATTENTIVE) {
		if (attentive_pool_fwd(h, c, xhat, B, K, c->z, NULL, NULL))
			return AIM_ERR;
	} else {
		if (K != 1)
			return aim_error("head: a linear head trains on pooled, normalised rows");
		memcpy(c->z, xhat, (size_t)B * h->cfg.dim * sizeof(float));
	}
	classifier_fwd(h, c->z, B, logits);
	return AIM_OK;
}

int aim_head_backward(const aim_head *h, const aim_head_cache *c, const float *xhat,
		      const float *dlogits, float *grad, float *dxhat)
{
	int64_t B = c->B;
	int D = h->cfg.dim;
	float *dz = malloc((size_t)B * D * sizeof(float));
	if (!dz)
		return aim_error("head: out of memory");
	classifier_bwd(h, c->z, B, dlogits, grad, dz);
	int rc = AIM_OK;
	if (h->cfg.kind == AIM_PROBE_ATTENTIVE)
		rc = attentive_pool_bwd(h, c, xhat, dz, grad, dxhat);
	else if (dxhat)
		for (int64_t i = 0; i < B * D; i++)
			dxhat[i] += dz[i];
	free(dz);
	return rc;
}

/* ---- loss, optimiser, schedule ---------------------------------------- */

double aim_head_cross_entropy(const float *logits, const int64_t *labels, int64_t B, int C,
			 double smoothing, float *dlogits, int64_t *counted)
{
	int64_t n = 0;
	for (int64_t b = 0; b < B; b++)
		n += labels[b] >= 0 && labels[b] < C;
	if (counted)
		*counted = n;
	double total = 0;
	for (int64_t b = 0; b < B; b++) {
		const float *l = logits + b * C;
		float *g = dlogits ? dlogits + b * C : NULL;
		int64_t y = labels[b];
		if (y < 0 || y >= C) {
			if (g)
				memset(g, 0, (size_t)C * sizeof(float));
			continue;
		}
		double mx = l[0];
		for (int j = 1; j < C; j++)
			if (l[j] > mx)
				mx = l[j];
		double se = 0, sl = 0;
		for (int j = 0; j < C; j++) {
			se += exp(l[j] - mx);
			sl += l[j];
		}
		double lse = mx + log(se);
		total += (1 - smoothing) * (lse - l[y]) + smoothing * (lse - sl / C);
		if (g)
			for (int j = 0; j < C; j++) {
				double target = smoothing / C + (j == y ? 1 - smoothing : 0);
				g[j] = (float)((exp(l[j] - lse) - target) / (double)n);
			}
	}
	return n ? total / (double)n : NAN;
}

int aim_head_adamw_init(aim_head_adamw *o, const aim_head *h)
{
	memset(o, 0, sizeof *o);
	o->m = calloc(h->nparams ? h->nparams : 1, sizeof(float));
	o->v = calloc(h->nparams ? h->nparams : 1, sizeof(float));
	if (!o->m || !o->v) {
		aim_head_adamw_free(o);
		return aim_error("head: out of memory for the optimiser");
	}
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->eps = 1e-8;
	return AIM_OK;
}

void aim_head_adamw_free(aim_head_adamw *o)
{
	free(o->m);
	free(o->v);
	memset(o, 0, sizeof *o);
}

/* One parameter range of the flat head vector: the trainer's AdamW. */
static void adamw_range(aim_head_adamw *o, float *p, const float *g, size_t off, size_t n,
			double lr, double wd)
{
	aim_adamw_tensor(p + off, o->m + off, o->v + off, g + off, (long)n, lr, o->beta1, o->beta2,
			 o->eps, wd, wd != 0, (long)o->t);
}

void aim_head_adamw_step(aim_head_adamw *o, aim_head *h, const float *grad, double lr,
			 double weight_decay)
{
	const aim_head_config *c = &h->cfg;
	size_t D = (size_t)c->dim;
	o->t++;
	if (h->cls_token) {
		adamw_range(o, h->params, grad, h->cls_token - h->params, (size_t)c->queries * D, lr, 0);
		adamw_range(o, h->params, grad, h->wk - h->params, D * D, lr, weight_decay);
		adamw_range(o, h->params, grad, h->wv - h->params, D * D, lr, weight_decay);
	}
	adamw_range(o, h->params, grad, h->wlin - h->params, (size_t)c->classes * D, lr,
		    weight_decay);
	if (h->blin)
		adamw_range(o, h->params, grad, h->blin - h->params, (size_t)c->classes, lr, 0);
}

double aim_head_lr_schedule(double base, double t, double warmup, double total)
{
	if (warmup > 0 && t < warmup)
		return base * t / warmup;
	if (total <= warmup)
		return base;
	double f = (t - warmup) / (total - warmup);
	if (f > 1)
		f = 1;
	return base * 0.5 * (1 + cos(M_PI * f));
}
