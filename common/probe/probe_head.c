/* Probe heads: the head object (configuration, parameters, initialisation,
 * loading and saving), the linear classifier both kinds end in, and the whole
 * head's forward and backward. The pieces: BatchNorm in probe_bn.c, the
 * attention pooling in probe_attentive.c, loss and optimiser in
 * probe_optim.c. The maths is spelled out in probe_head.h. */
#include "probe_head.h"
#include "probe_parts.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "gemm.h"
#include "tensor.h"

/* ---- configuration, allocation, initialisation ------------------------- */

int aim_head_default_heads(int D)
{
	if (D >= 128 && D % 128 == 0)
		return D / 128;
	for (int h = D / 64; h > 1; h--)
		if (D % h == 0)
			return h;
	return 1;
}

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

/* ---- the linear classifier ------------------------------------------- */

static void classifier_fwd(const aim_head *h, const float *z, int64_t B, float *logits)
{
	int D = h->cfg.dim, C = h->cfg.classes;
	aim_sgemm(0, 1, (int)B, C, D, 1.0f, z, D, h->wlin, D,
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
	aim_sgemm(1, 0, C, D, (int)B, 1.0f, dlogits, C, z, D,
		    1.0f, grad + (h->wlin - h->params), D);
	if (h->blin) {
		float *db = grad + (h->blin - h->params);
		for (int64_t b = 0; b < B; b++)
			for (int j = 0; j < C; j++)
				db[j] += dlogits[b * C + j];
	}
	aim_sgemm(0, 0, (int)B, D, C, 1.0f, dlogits, C,
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
		rc = aim_head_cache_reserve(&c, &h->cfg, B, K);
		if (!rc)
			rc = aim_head_attentive_fwd(h, &c, x, B, K, z, h->running_mean, rs);
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
	if (aim_head_cache_reserve(c, &h->cfg, B, K))
		return AIM_ERR;
	if (h->cfg.kind == AIM_PROBE_ATTENTIVE) {
		if (aim_head_attentive_fwd(h, c, xhat, B, K, c->z, NULL, NULL))
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
		rc = aim_head_attentive_bwd(h, c, xhat, dz, grad, dxhat);
	else if (dxhat)
		for (int64_t i = 0; i < B * D; i++)
			dxhat[i] += dz[i];
	free(dz);
	return rc;
}

