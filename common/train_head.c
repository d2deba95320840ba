/* The pixel head: forward and backward side by side (train_head.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
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

#define P_(h, s) aim_pixel_head_param((h), (s), NULL)

int aim_pixel_head_new(aim_pixel_head *h, int in_dim, int width, int blocks, int out_dim,
		       int rows, int cols)
{
	memset(h, 0, sizeof *h);
	if (width % 4 || width <= 0)
		return aim_error("pixel head width %d is not a positive multiple of 4", width);
	if (blocks < 0 || 6 + 4 * blocks > AIM_PIXEL_HEAD_MAX_TENSORS)
		return aim_error("pixel head: bad number of blocks %d", blocks);
	h->in_dim = in_dim;
	h->width = width;
	h->blocks = blocks;
	h->out_dim = out_dim;
	h->rows = rows;
	h->cols = cols;
	h->eps = 1e-6f;
	const int W = width;
	char name[96];
	int rc = add_tensor(h, "proj.weight", 2, W, in_dim);
	rc |= add_tensor(h, "proj.bias", 1, W, 0);
	for (int i = 0; i < blocks; i++) {
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

static void free_activations(aim_pixel_head *h)
{
	free(h->x); free(h->ln); free(h->stats); free(h->pre); free(h->act); free(h->xn);
	free(h->dx); free(h->dln); free(h->dact); free(h->dpre);
	h->x = h->ln = h->stats = h->pre = h->act = h->xn = NULL;
	h->dx = h->dln = h->dact = h->dpre = NULL;
	h->cap_rows = 0;
}

void aim_pixel_head_free(aim_pixel_head *h)
{
	free_activations(h);
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
		if (strstr(s, "norm.weight"))
			for (long j = 0; j < t->n; j++)
				w[j] = 1.0f;
		else if (len > 5 && !strcmp(s + len - 5, ".bias"))
			memset(w, 0, sizeof(float) * t->n);
		else /* Xavier uniform: U(±√(6 / (fan_in + fan_out))) */
			aim_rng_fill_uniform(rng, w, t->n,
					     sqrtf(6.0f / (float)(t->shape[0] + t->shape[1])));
	}
}

static int ensure_activations(aim_pixel_head *h, long M)
{
	if (M <= h->cap_rows)
		return 0;
	free_activations(h);
	const long W = h->width, N = h->blocks;
	h->x = malloc(sizeof(float) * (N + 1) * M * W);
	h->ln = malloc(sizeof(float) * (N ? N : 1) * M * W);
	h->stats = malloc(sizeof(float) * (N + 1) * 2 * M);
	h->pre = malloc(sizeof(float) * (N ? N : 1) * M * 4 * W);
	h->act = malloc(sizeof(float) * (N ? N : 1) * M * 4 * W);
	h->xn = malloc(sizeof(float) * M * W);
	h->dx = malloc(sizeof(float) * M * W);
	h->dln = malloc(sizeof(float) * M * W);
	h->dact = malloc(sizeof(float) * M * 4 * W);
	h->dpre = malloc(sizeof(float) * M * 4 * W);
	if (!h->x || !h->ln || !h->stats || !h->pre || !h->act || !h->xn || !h->dx ||
	    !h->dln || !h->dact || !h->dpre) {
		free_activations(h);
		return aim_error("out of memory for pixel-head activations (%ld rows)", M);
	}
	h->cap_rows = M;
	return 0;
}

static const char *block_name(char *buf, size_t n, int i, const char *what)
{
	snprintf(buf, n, "blocks.%d.%s", i, what);
	return buf;
}

int aim_pixel_head_forward(aim_pixel_head *h, float *pred, const float *in, long M,
			   const int *pos)
{
	const int W = h->width, K = h->rows * h->cols;
	if (!pos && M % K)
		return aim_error("pixel head: %ld rows is not a whole number of %d-patch images",
				 M, K);
	if (ensure_activations(h, M))
		return AIM_ERR;
	h->rows_used = M;
	char nb[96];

	/* x0 = proj(h) + pos */
	float *x0 = h->x;
	aim_linear_fwd(x0, in, P_(h, "proj.weight"), P_(h, "proj.bias"), (int)M, h->in_dim, W);
	if (!pos) {
		aim_add_rows(x0, h->pos, (int)(M / K), (size_t)K * W);
	} else {
		#pragma omp parallel for schedule(static)
		for (long i = 0; i < M; i++) {
			const float *t = h->pos + (size_t)pos[i] * W;
			float *x = x0 + i * W;
			for (int j = 0; j < W; j++)
				x[j] += t[j];
		}
	}

	for (int i = 0; i < h->blocks; i++) {
		const float *xi = h->x + (long)i * M * W;
		float *xo = h->x + (long)(i + 1) * M * W;
		float *ln = h->ln + (long)i * M * W;
		float *mean = h->stats + (long)i * 2 * M, *rstd = mean + M;
		float *pre = h->pre + (long)i * M * 4 * W, *act = h->act + (long)i * M * 4 * W;
		aim_layernorm_fwd(ln, mean, rstd, xi, P_(h, block_name(nb, sizeof nb, i, "norm.weight")),
				  P_(h, block_name(nb, sizeof nb, i, "norm.bias")), (int)M, W, h->eps);
		aim_linear_fwd(pre, ln, P_(h, block_name(nb, sizeof nb, i, "mlp.fc1.weight")), NULL,
			       (int)M, W, 4 * W);
		aim_gelu_fwd(act, pre, (size_t)M * 4 * W);
		/* xo = xi + fc2(act): the GEMM writes xo, then the residual adds. */
		aim_linear_fwd(xo, act, P_(h, block_name(nb, sizeof nb, i, "mlp.fc2.weight")), NULL,
			       (int)M, 4 * W, W);
		aim_add_fwd(xo, xo, xi, (size_t)M * W);
	}

	const float *xN = h->x + (long)h->blocks * M * W;
	float *mean = h->stats + (long)h->blocks * 2 * M, *rstd = mean + M;
	aim_layernorm_fwd(h->xn, mean, rstd, xN, P_(h, "norm.weight"), P_(h, "norm.bias"),
			  (int)M, W, h->eps);
	aim_linear_fwd(pred, h->xn, P_(h, "pred.weight"), P_(h, "pred.bias"), (int)M, W,
		       h->out_dim);
	return 0;
}

void aim_pixel_head_backward(aim_pixel_head *h, float *din, const float *dpred,
			     const float *in)
{
	const long M = h->rows_used;
	const int W = h->width;
	char nb[96];
	float *gw, *gb;

	/* pred = xn·Wpᵀ + bp */
	float *wp = aim_pixel_head_param(h, "pred.weight", &gw);
	aim_pixel_head_param(h, "pred.bias", &gb);
	memset(h->dln, 0, sizeof(float) * M * W);
	aim_linear_bwd(h->dln, gw, gb, dpred, h->xn, wp, (int)M, W, h->out_dim);

	/* xn = LN(x_N): dx starts as the gradient of the last residual. */
	const float *xN = h->x + (long)h->blocks * M * W;
	float *mean = h->stats + (long)h->blocks * 2 * M, *rstd = mean + M;
	float *nw = aim_pixel_head_param(h, "norm.weight", &gw);
	aim_pixel_head_param(h, "norm.bias", &gb);
	memset(h->dx, 0, sizeof(float) * M * W);
	aim_layernorm_bwd(h->dx, gw, gb, h->dln, xN, nw, mean, rstd, (int)M, W);

	for (int i = h->blocks - 1; i >= 0; i--) {
		const float *xi = h->x + (long)i * M * W;
		const float *ln = h->ln + (long)i * M * W;
		const float *bm = h->stats + (long)i * 2 * M, *br = bm + M;
		const float *pre = h->pre + (long)i * M * 4 * W, *act = h->act + (long)i * M * 4 * W;
		/* x_{i+1} = x_i + fc2(gelu(fc1(LN(x_i)))): dx already holds the
		 * residual path; the branch adds onto it. */
		float *w2 = aim_pixel_head_param(h, block_name(nb, sizeof nb, i, "mlp.fc2.weight"), &gw);
		memset(h->dact, 0, sizeof(float) * M * 4 * W);
		aim_linear_bwd(h->dact, gw, NULL, h->dx, act, w2, (int)M, 4 * W, W);
		memset(h->dpre, 0, sizeof(float) * M * 4 * W);
		aim_gelu_bwd(h->dpre, h->dact, pre, (size_t)M * 4 * W);
		float *w1 = aim_pixel_head_param(h, block_name(nb, sizeof nb, i, "mlp.fc1.weight"), &gw);
		memset(h->dln, 0, sizeof(float) * M * W);
		aim_linear_bwd(h->dln, gw, NULL, h->dpre, ln, w1, (int)M, W, 4 * W);
		float *lw = aim_pixel_head_param(h, block_name(nb, sizeof nb, i, "norm.weight"), &gw);
		aim_pixel_head_param(h, block_name(nb, sizeof nb, i, "norm.bias"), &gb);
		aim_layernorm_bwd(h->dx, gw, gb, h->dln, xi, lw, bm, br, (int)M, W);
	}

	/* x0 = proj(in) + pos (pos is fixed) */
	float *wproj = aim_pixel_head_param(h, "proj.weight", &gw);
	aim_pixel_head_param(h, "proj.bias", &gb);
	aim_linear_bwd(din, gw, gb, h->dx, in, wproj, (int)M, h->in_dim, W);
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
