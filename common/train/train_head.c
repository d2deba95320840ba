/* The pixel head: forward and backward side by side (train_head.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "backend.h"
#include "ops.h"
#include "train_head.h"

static int add_tensor(aim_pixel_head *h, const char *suffix, int ndim, int64_t d0, int64_t d1)
{
	if (h->nt == AIM_PIXEL_HEAD_MAX_TENSORS)
		return aim_error("pixel head: too many blocks");
	aim_head_tensor *t = &h->t[h->nt++];
	t->suffix = strdup(suffix);
	if (!t->suffix)
		return aim_error("out of memory");
	t->ndim = ndim;
	t->shape[0] = d0;
	t->shape[1] = ndim > 1 ? d1 : 1;
	t->n = (long)d0 * (ndim > 1 ? d1 : 1);
	t->off = h->nparams;
	h->nparams += t->n;
	return 0;
}

static aim_head_tensor *find_tensor(aim_pixel_head *h, const char *suffix)
{
	for (int i = 0; i < h->nt; i++)
		if (!strcmp(h->t[i].suffix, suffix))
			return &h->t[i];
	return NULL;
}

float *aim_pixel_head_param(aim_pixel_head *h, const char *suffix, float **grad)
{
	aim_head_tensor *t = find_tensor(h, suffix);
	if (grad)
		*grad = t ? h->grads + t->off : NULL;
	return t ? h->params + t->off : NULL;
}

int aim_pixel_head_new(aim_pixel_head *h, int in_dim, int width, int blocks, int out_dim,
		       int rows, int cols)
{
	return aim_pixel_head_new_kind(h, AIM_HEAD_MLP, in_dim, width, blocks, 1, 1, out_dim, rows,
				       cols);
}

/* The tensors of transformer block i, in arena order. */
static int add_transformer_block(aim_pixel_head *h, int i)
{
	const int W = h->width;
	char name[96];
	int rc = 0;
#define T(what, nd, a, b) (snprintf(name, sizeof name, "blocks.%d.%s", i, what), \
			   add_tensor(h, name, nd, a, b))
	rc |= T("norm_1.weight", 1, W, 0);
	rc |= T("norm_1.bias", 1, W, 0);
	rc |= T("attn.qkv.weight", 2, 3 * W, W);
	rc |= T("attn.proj.weight", 2, W, W);
	rc |= T("norm_2.weight", 1, W, 0);
	rc |= T("norm_2.bias", 1, W, 0);
	rc |= T("mlp.fc1.weight", 2, 4 * W, W);
	rc |= T("mlp.fc2.weight", 2, W, 4 * W);
#undef T
	return rc;
}

int aim_pixel_head_new_kind(aim_pixel_head *h, aim_head_kind kind, int in_dim, int width,
			    int blocks, int heads, int causal, int out_dim, int rows, int cols)
{
	memset(h, 0, sizeof *h);
	if (kind == AIM_HEAD_NONE) {
		width = in_dim; /* no width of its own: pos stays a valid table */
		blocks = 0;
	}
	if (width % 4 || width <= 0)
		return aim_error("pixel head width %d is not a positive multiple of 4", width);
	if (blocks < 0 || 6 + 8 * blocks > AIM_PIXEL_HEAD_MAX_TENSORS)
		return aim_error("pixel head: bad number of blocks %d", blocks);
	if (kind == AIM_HEAD_TRANSFORMER && (heads < 1 || width % heads))
		return aim_error("transformer pixel head: width %d is not a multiple of %d heads",
				 width, heads);
	h->kind = kind;
	h->heads = heads;
	h->causal = causal;
	h->in_dim = in_dim;
	h->width = width;
	h->blocks = blocks;
	h->out_dim = out_dim;
	h->rows = rows;
	h->cols = cols;
	h->eps = 1e-6f;
	const int W = width;
	char name[96];
	int rc = 0;
	if (kind == AIM_HEAD_NONE) {
		rc |= add_tensor(h, "pred.weight", 2, out_dim, in_dim);
		rc |= add_tensor(h, "pred.bias", 1, out_dim, 0);
		goto arenas;
	}
	rc |= add_tensor(h, "proj.weight", 2, W, in_dim);
	rc |= add_tensor(h, "proj.bias", 1, W, 0);
	for (int i = 0; i < blocks && kind == AIM_HEAD_TRANSFORMER; i++)
		rc |= add_transformer_block(h, i);
	for (int i = 0; i < blocks && kind == AIM_HEAD_MLP; i++) {
		snprintf(name, sizeof name, "blocks.%d.norm.weight", i);
		rc |= add_tensor(h, name, 1, W, 0);
		snprintf(name, sizeof name, "blocks.%d.norm.bias", i);
		rc |= add_tensor(h, name, 1, W, 0);
		snprintf(name, sizeof name, "blocks.%d.mlp.fc1.weight", i);
		rc |= add_tensor(h, name, 2, 4 * W, W);
		snprintf(name, sizeof name, "blocks.%d.mlp.fc2.weight", i);
		rc |= add_tensor(h, name, 2, W, 4 * W);
	}
	rc |= add_tensor(h, "norm.weight", 1, W, 0);
	rc |= add_tensor(h, "norm.bias", 1, W, 0);
	rc |= add_tensor(h, "pred.weight", 2, out_dim, W);
	rc |= add_tensor(h, "pred.bias", 1, out_dim, 0);
arenas:
	if (rc)
		return AIM_ERR;
	h->params = calloc(h->nparams, sizeof(float));
	h->grads = calloc(h->nparams, sizeof(float));
	h->pos = malloc(sizeof(float) * rows * cols * W);
	if (!h->params || !h->grads || !h->pos)
		return aim_error("out of memory for the pixel head");
	aim_sincos_pos_2d(h->pos, rows, cols, W);
	return 0;
}

void aim_head_acts_free(aim_head_acts *a, const aim_backend *be)
{
	float **bufs[] = {&a->x, &a->ln, &a->stats, &a->pre, &a->act, &a->xn, &a->posrows,
			  &a->ln2, &a->stats2, &a->qkv, &a->att, &a->lse, &a->mid,
			  &a->dx, &a->dln, &a->dact, &a->dpre, &a->dmid, &a->dqkv};
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
		be->free(*bufs[i]);
		*bufs[i] = NULL;
	}
	a->cap_rows = a->rows_used = 0;
}

void aim_pixel_head_free(aim_pixel_head *h)
{
	aim_head_acts_free(&h->acts, aim_backend_cpu());
	for (int i = 0; i < h->nt; i++)
		free((char *)h->t[i].suffix);
	free(h->params);
	free(h->grads);
	free(h->pos);
	memset(h, 0, sizeof *h);
}

void aim_pixel_head_init_random(aim_pixel_head *h, aim_rng *rng)
{
	for (int i = 0; i < h->nt; i++) {
		aim_head_tensor *t = &h->t[i];
		float *w = h->params + t->off;
		const char *s = t->suffix;
		size_t len = strlen(s);
		if (strstr(s, "norm") && len > 7 && !strcmp(s + len - 7, ".weight"))
			for (long j = 0; j < t->n; j++)
				w[j] = 1.0f;
		else if (len > 5 && !strcmp(s + len - 5, ".bias"))
			memset(w, 0, sizeof(float) * t->n);
		else /* Xavier uniform: U(±√(6 / (fan_in + fan_out))) */
			aim_rng_fill_uniform(rng, w, t->n,
					     sqrtf(6.0f / (float)(t->shape[0] + t->shape[1])));
	}
}

static int ensure_acts(const aim_pixel_head *h, const aim_backend *be, aim_head_acts *a, long M)
{
	if (M <= a->cap_rows)
		return 0;
	aim_head_acts_free(a, be);
	const long W = h->width, N = h->blocks, N1 = N ? N : 1;
	const size_t f = sizeof(float);
	a->x = be->alloc(f * (N + 1) * M * W);
	a->ln = be->alloc(f * N1 * M * W);
	a->stats = be->alloc(f * (N + 1) * 2 * M);
	a->pre = be->alloc(f * N1 * M * 4 * W);
	a->act = be->alloc(f * N1 * M * 4 * W);
	a->xn = be->alloc(f * M * W);
	a->posrows = be->alloc(f * M * W);
	a->dx = be->alloc(f * M * W);
	a->dln = be->alloc(f * M * W);
	a->dact = be->alloc(f * M * 4 * W);
	a->dpre = be->alloc(f * M * 4 * W);
	int ok = 1;
	if (h->kind == AIM_HEAD_TRANSFORMER) {
		a->ln2 = be->alloc(f * N1 * M * W);
		a->stats2 = be->alloc(f * N1 * 2 * M);
		a->qkv = be->alloc(f * N1 * M * 3 * W);
		a->att = be->alloc(f * N1 * M * W);
		a->lse = be->alloc(f * N1 * M * h->heads);
		a->mid = be->alloc(f * N1 * M * W);
		a->dmid = be->alloc(f * M * W);
		a->dqkv = be->alloc(f * M * 3 * W);
		ok = a->ln2 && a->stats2 && a->qkv && a->att && a->lse && a->mid && a->dmid &&
		     a->dqkv;
	}
	if (!ok || !a->x || !a->ln || !a->stats || !a->pre || !a->act || !a->xn || !a->posrows ||
	    !a->dx || !a->dln || !a->dact || !a->dpre) {
		aim_head_acts_free(a, be);
		return aim_error("out of %s memory for pixel-head activations (%ld rows)",
				 be->host_memory ? "host" : be->name, M);
	}
	a->cap_rows = M;
	return 0;
}

static const char *block_name(char *buf, size_t n, int i, const char *what)
{
	snprintf(buf, n, "blocks.%d.%s", i, what);
	return buf;
}

/* The backend's copy of tensor `suffix` (and of its gradient). */
static float *W_(const aim_pixel_head *h, const aim_head_mem *m, const char *suffix,
		 float **grad)
{
	const aim_head_tensor *t = find_tensor((aim_pixel_head *)h, suffix);
	if (grad)
		*grad = m->grads + t->off;
	return m->params + t->off;
}

/* Transformer block i on M rows (whole images of K):
 *   mid = x + proj(attn(qkv(LN₁(x)))),  x_i+1 = mid + fc2(GELU(fc1(LN₂(mid)))) */
static void transformer_block_fwd(const aim_pixel_head *h, const aim_head_mem *m, aim_head_acts *a,
				  int i, long M)
{
	const aim_backend *be = m->be;
	const int W = h->width, K = h->rows * h->cols, Mi = (int)M, H = h->heads;
	char nb[96];
	const float *xi = a->x + (long)i * M * W;
	float *xo = a->x + (long)(i + 1) * M * W;
	float *ln = a->ln + (long)i * M * W, *ln2 = a->ln2 + (long)i * M * W;
	float *st1 = a->stats + (long)i * 2 * M, *st2 = a->stats2 + (long)i * 2 * M;
	float *qkv = a->qkv + (long)i * M * 3 * W, *att = a->att + (long)i * M * W;
	float *lse = a->lse + (long)i * M * H, *mid = a->mid + (long)i * M * W;
	float *pre = a->pre + (long)i * M * 4 * W, *act = a->act + (long)i * M * 4 * W;
#define BW(what) W_(h, m, block_name(nb, sizeof nb, i, what), NULL)
	be->layernorm_fwd(ln, st1, st1 + M, xi, BW("norm_1.weight"), BW("norm_1.bias"), Mi, W,
			  h->eps);
	be->linear_fwd(qkv, ln, BW("attn.qkv.weight"), NULL, Mi, W, 3 * W);
	be->attention_fwd(att, lse, qkv, (int)(M / K), K, H, W / H,
			  h->causal ? AIM_MASK_CAUSAL : AIM_MASK_NONE, NULL);
	be->copy(mid, xi, sizeof(float) * M * W);
	be->linear_fwd_acc(mid, att, BW("attn.proj.weight"), NULL, Mi, W, W);
	be->layernorm_fwd(ln2, st2, st2 + M, mid, BW("norm_2.weight"), BW("norm_2.bias"), Mi, W,
			  h->eps);
	be->linear_fwd(pre, ln2, BW("mlp.fc1.weight"), NULL, Mi, W, 4 * W);
	be->gelu_fwd(act, pre, (size_t)M * 4 * W);
	be->copy(xo, mid, sizeof(float) * M * W);
	be->linear_fwd_acc(xo, act, BW("mlp.fc2.weight"), NULL, Mi, 4 * W, W);
#undef BW
}

/* Its backward: a->dx holds dL/dx_i+1 on entry and dL/dx_i on return. */
static void transformer_block_bwd(const aim_pixel_head *h, const aim_head_mem *m,
				  aim_head_acts *a, int i, long M)
{
	const aim_backend *be = m->be;
	const int W = h->width, K = h->rows * h->cols, Mi = (int)M, H = h->heads;
	const size_t f = sizeof(float);
	char nb[96];
	float *g, *gb;
	const float *xi = a->x + (long)i * M * W;
	const float *ln = a->ln + (long)i * M * W, *ln2 = a->ln2 + (long)i * M * W;
	const float *st1 = a->stats + (long)i * 2 * M, *st2 = a->stats2 + (long)i * 2 * M;
	const float *qkv = a->qkv + (long)i * M * 3 * W, *att = a->att + (long)i * M * W;
	const float *lse = a->lse + (long)i * M * H, *mid = a->mid + (long)i * M * W;
	const float *pre = a->pre + (long)i * M * 4 * W, *act = a->act + (long)i * M * 4 * W;
#define BW(what, grad) W_(h, m, block_name(nb, sizeof nb, i, what), grad)
	/* MLP branch: dmid = dx + LN₂ᵀ(fc1ᵀ(GELU'(fc2ᵀ dx))) */
	be->copy(a->dmid, a->dx, f * M * W);
	float *w = BW("mlp.fc2.weight", &g);
	be->zero(a->dact, f * M * 4 * W);
	be->linear_bwd(a->dact, g, NULL, a->dx, act, w, Mi, 4 * W, W);
	be->zero(a->dpre, f * M * 4 * W);
	be->gelu_bwd(a->dpre, a->dact, pre, (size_t)M * 4 * W);
	w = BW("mlp.fc1.weight", &g);
	be->zero(a->dln, f * M * W);
	be->linear_bwd(a->dln, g, NULL, a->dpre, ln2, w, Mi, W, 4 * W);
	w = BW("norm_2.weight", &g);
	BW("norm_2.bias", &gb);
	be->layernorm_bwd(a->dmid, g, gb, a->dln, mid, w, st2, st2 + M, Mi, W);
	/* attention branch: dx = dmid + LN₁ᵀ(qkvᵀ(attnᵀ(projᵀ dmid))) */
	w = BW("attn.proj.weight", &g);
	be->zero(a->dln, f * M * W);
	be->linear_bwd(a->dln, g, NULL, a->dmid, att, w, Mi, W, W);
	be->zero(a->dqkv, f * M * 3 * W);
	be->attention_bwd(a->dqkv, a->dln, qkv, att, lse, (int)(M / K), K, H, W / H,
			  h->causal ? AIM_MASK_CAUSAL : AIM_MASK_NONE, NULL);
	w = BW("attn.qkv.weight", &g);
	be->zero(a->dln, f * M * W);
	be->linear_bwd(a->dln, g, NULL, a->dqkv, ln, w, Mi, W, 3 * W);
	be->copy(a->dx, a->dmid, f * M * W);
	w = BW("norm_1.weight", &g);
	BW("norm_1.bias", &gb);
	be->layernorm_bwd(a->dx, g, gb, a->dln, xi, w, st1, st1 + M, Mi, W);
#undef BW
}

int aim_pixel_head_forward_on(const aim_pixel_head *h, const aim_head_mem *m, aim_head_acts *a,
			      float *pred, const float *in, long M, const int *pos)
{
	const aim_backend *be = m->be;
	const int W = h->width, K = h->rows * h->cols, Mi = (int)M;
	if (!pos && M % K)
		return aim_error("pixel head: %ld rows is not a whole number of %d-patch images",
				 M, K);
	if (h->kind == AIM_HEAD_TRANSFORMER && M % K)
		return aim_error("internal: the transformer pixel head takes whole images");
	a->rows_used = M;
	if (h->kind == AIM_HEAD_NONE) { /* pred = in · W_predᵀ + b_pred */
		be->linear_fwd(pred, in, W_(h, m, "pred.weight", NULL), W_(h, m, "pred.bias", NULL),
			       Mi, h->in_dim, h->out_dim);
		return 0;
	}
	if (ensure_acts(h, be, a, M))
		return AIM_ERR;
	a->rows_used = M;
	char nb[96];

	/* x0 = proj(h) + the position-table row of each row's grid position */
	float *x0 = a->x;
	be->linear_fwd(x0, in, W_(h, m, "proj.weight", NULL), W_(h, m, "proj.bias", NULL), Mi,
		       h->in_dim, W);
	if (!pos) {
		be->add_rows(x0, m->pos, (int)(M / K), (size_t)K * W);
	} else {
		be->gather_rows(a->posrows, m->pos, pos, M, W);
		be->add_fwd(x0, x0, a->posrows, (size_t)M * W);
	}

	for (int i = 0; i < h->blocks && h->kind == AIM_HEAD_TRANSFORMER; i++)
		transformer_block_fwd(h, m, a, i, M);
	for (int i = 0; i < h->blocks && h->kind == AIM_HEAD_MLP; i++) {
		const float *xi = a->x + (long)i * M * W;
		float *xo = a->x + (long)(i + 1) * M * W;
		float *ln = a->ln + (long)i * M * W;
		float *mean = a->stats + (long)i * 2 * M, *rstd = mean + M;
		float *pre = a->pre + (long)i * M * 4 * W, *act = a->act + (long)i * M * 4 * W;
		be->layernorm_fwd(ln, mean, rstd, xi,
				  W_(h, m, block_name(nb, sizeof nb, i, "norm.weight"), NULL),
				  W_(h, m, block_name(nb, sizeof nb, i, "norm.bias"), NULL), Mi, W,
				  h->eps);
		be->linear_fwd(pre, ln, W_(h, m, block_name(nb, sizeof nb, i, "mlp.fc1.weight"), NULL),
			       NULL, Mi, W, 4 * W);
		be->gelu_fwd(act, pre, (size_t)M * 4 * W);
		/* xo = xi + fc2(act): the GEMM writes xo, then the residual adds. */
		be->linear_fwd(xo, act, W_(h, m, block_name(nb, sizeof nb, i, "mlp.fc2.weight"), NULL),
			       NULL, Mi, 4 * W, W);
		be->add_fwd(xo, xo, xi, (size_t)M * W);
	}

	const float *xN = a->x + (long)h->blocks * M * W;
	float *mean = a->stats + (long)h->blocks * 2 * M, *rstd = mean + M;
	be->layernorm_fwd(a->xn, mean, rstd, xN, W_(h, m, "norm.weight", NULL),
			  W_(h, m, "norm.bias", NULL), Mi, W, h->eps);
	be->linear_fwd(pred, a->xn, W_(h, m, "pred.weight", NULL), W_(h, m, "pred.bias", NULL), Mi,
		       W, h->out_dim);
	return 0;
}

void aim_pixel_head_backward_on(const aim_pixel_head *h, const aim_head_mem *m,
				aim_head_acts *a, float *din, const float *dpred, const float *in)
{
	const aim_backend *be = m->be;
	const long M = a->rows_used;
	const int W = h->width, Mi = (int)M;
	const size_t f = sizeof(float);
	char nb[96];
	float *gw, *gb;
	if (h->kind == AIM_HEAD_NONE) {
		float *wp = W_(h, m, "pred.weight", &gw);
		W_(h, m, "pred.bias", &gb);
		be->linear_bwd(din, gw, gb, dpred, in, wp, Mi, h->in_dim, h->out_dim);
		return;
	}

	/* pred = xn·Wpᵀ + bp */
	float *wp = W_(h, m, "pred.weight", &gw);
	W_(h, m, "pred.bias", &gb);
	be->zero(a->dln, f * M * W);
	be->linear_bwd(a->dln, gw, gb, dpred, a->xn, wp, Mi, W, h->out_dim);

	/* xn = LN(x_N): dx starts as the gradient of the last residual. */
	const float *xN = a->x + (long)h->blocks * M * W;
	float *mean = a->stats + (long)h->blocks * 2 * M, *rstd = mean + M;
	float *nw = W_(h, m, "norm.weight", &gw);
	W_(h, m, "norm.bias", &gb);
	be->zero(a->dx, f * M * W);
	be->layernorm_bwd(a->dx, gw, gb, a->dln, xN, nw, mean, rstd, Mi, W);

	for (int i = h->blocks - 1; i >= 0 && h->kind == AIM_HEAD_TRANSFORMER; i--)
		transformer_block_bwd(h, m, a, i, M);
	for (int i = h->blocks - 1; i >= 0 && h->kind == AIM_HEAD_MLP; i--) {
		const float *xi = a->x + (long)i * M * W;
		const float *ln = a->ln + (long)i * M * W;
		const float *bm = a->stats + (long)i * 2 * M, *br = bm + M;
		const float *pre = a->pre + (long)i * M * 4 * W, *act = a->act + (long)i * M * 4 * W;
		/* x_{i+1} = x_i + fc2(gelu(fc1(LN(x_i)))): dx already holds the
		 * residual path; the branch adds onto it. */
		float *w2 = W_(h, m, block_name(nb, sizeof nb, i, "mlp.fc2.weight"), &gw);
		be->zero(a->dact, f * M * 4 * W);
		be->linear_bwd(a->dact, gw, NULL, a->dx, act, w2, Mi, 4 * W, W);
		be->zero(a->dpre, f * M * 4 * W);
		be->gelu_bwd(a->dpre, a->dact, pre, (size_t)M * 4 * W);
		float *w1 = W_(h, m, block_name(nb, sizeof nb, i, "mlp.fc1.weight"), &gw);
		be->zero(a->dln, f * M * W);
		be->linear_bwd(a->dln, gw, NULL, a->dpre, ln, w1, Mi, W, 4 * W);
		float *lw = W_(h, m, block_name(nb, sizeof nb, i, "norm.weight"), &gw);
		W_(h, m, block_name(nb, sizeof nb, i, "norm.bias"), &gb);
		be->layernorm_bwd(a->dx, gw, gb, a->dln, xi, lw, bm, br, Mi, W);
	}

	/* x0 = proj(in) + pos (pos is fixed) */
	float *wproj = W_(h, m, "proj.weight", &gw);
	W_(h, m, "proj.bias", &gb);
	be->linear_bwd(din, gw, gb, a->dx, in, wproj, Mi, h->in_dim, W);
}

static aim_head_mem host_mem(aim_pixel_head *h)
{
	aim_head_mem m = {aim_backend_cpu(), h->params, h->grads, h->pos};
	return m;
}

int aim_pixel_head_forward(aim_pixel_head *h, float *pred, const float *in, long M,
			   const int *pos)
{
	aim_head_mem m = host_mem(h);
	return aim_pixel_head_forward_on(h, &m, &h->acts, pred, in, M, pos);
}

void aim_pixel_head_backward(aim_pixel_head *h, float *din, const float *dpred,
			     const float *in)
{
	aim_head_mem m = host_mem(h);
	aim_pixel_head_backward_on(h, &m, &h->acts, din, dpred, in);
}

int aim_pixel_head_to_record(aim_pixel_head *h, aim_record *r)
{
	char name[160];
	for (int i = 0; i < h->nt; i++) {
		aim_head_tensor *t = &h->t[i];
		snprintf(name, sizeof name, AIM_PIXEL_HEAD_PREFIX "%s", t->suffix);
		if (!aim_record_add_ref(r, name, AIM_F32, t->ndim, t->shape, h->params + t->off))
			return AIM_ERR;
	}
	return 0;
}

int aim_pixel_head_from_record(aim_pixel_head *h, const aim_record *r, const char *what)
{
	char name[160], a[64], b[64];
	for (int i = 0; i < h->nt; i++) {
		aim_head_tensor *t = &h->t[i];
		snprintf(name, sizeof name, AIM_PIXEL_HEAD_PREFIX "%s", t->suffix);
		aim_tensor *s = aim_record_find(r, name);
		if (!s)
			return aim_error("%s: tensor %s is missing", what, name);
		if (s->ndim != t->ndim || s->shape[0] != t->shape[0] ||
		    (t->ndim > 1 && s->shape[1] != t->shape[1]))
			return aim_error("%s: tensor %s has shape %s, expected %s", what, name,
					 aim_shape_str(s->ndim, s->shape, a, sizeof a),
					 aim_shape_str(t->ndim, t->shape, b, sizeof b));
		aim_to_f32(h->params + t->off, s);
	}
	return 0;
}

int aim_pixel_head_shape_in(const aim_record *rec, aim_head_kind kind, int *blocks, int *dim)
{
	const aim_tensor *pw = aim_record_find(rec, AIM_PIXEL_HEAD_PREFIX "proj.weight");
	const int is_tf = aim_record_find(rec, AIM_PIXEL_HEAD_PREFIX "blocks.0.norm_1.weight") != 0;
	if (kind == AIM_HEAD_NONE) /* pred.weight [P, D] alone */
		return !pw && aim_record_find(rec, AIM_PIXEL_HEAD_PREFIX "pred.weight");
	if (!pw || pw->ndim != 2 || is_tf != (kind == AIM_HEAD_TRANSFORMER))
		return 0;
	*dim = (int)pw->shape[0];
	char nm[96];
	for (*blocks = 0;; (*blocks)++) {
		snprintf(nm, sizeof nm, AIM_PIXEL_HEAD_PREFIX "blocks.%d.%s", *blocks,
			 is_tf ? "norm_1.weight" : "norm.weight");
		if (!aim_record_find(rec, nm))
			return 1;
	}
}
