/* A probe head trained jointly with the trunk's adaptation (probe_tune.h). */
#include "probe_tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "metrics.h"
#include "model_load.h"
#include "safetensors.h"
#include "probe_data.h"
#include "train_optim.h"
#include "train_rng.h"

static int add_tensor(aim_tune_trainer *t, const char *name, float *w, float *g, long n,
		      int decay, double scale)
{
	const aim_backend *be = t->m->be;
	aim_tune_tensor *e = &t->tt[t->ntt++];
	e->name = name;
	e->w = w;
	e->g = g;
	e->n = n;
	e->decay = decay;
	e->lr_scale = scale;
	e->m = be->alloc((size_t)n * sizeof(float));
	e->v = be->alloc((size_t)n * sizeof(float));
	if (!e->m || !e->v)
		return aim_error("out of memory for the optimiser's moments");
	t->trainable += (size_t)n;
	return AIM_OK;
}

/* The block a trunk tensor belongs to (-1: none). */
static int block_of(const char *name)
{
	int l;
	return sscanf(name, "trunk.blocks.%d.", &l) == 1 ? l : -1;
}

int aim_tune_trainer_init(aim_tune_trainer *t, aim_model *m, aim_head *h, const int *layers,
			  int nl, int micro, double smoothing, double layer_decay)
{
	memset(t, 0, sizeof *t);
	t->m = m;
	t->head = h;
	t->micro = micro > 0 ? micro : 1;
	t->smoothing = smoothing;
	if (nl < 1 || nl > m->cfg.depth)
		return aim_error("no blocks to take features from");
	/* the family's features, as aim_trunk_features reads them: AIMv2's
	 * through the post-trunk RMSNorm (trained with the trunk in full
	 * fine-tuning), AIM v1's before its post-trunk LayerNorm */
	t->post_norm = m->cfg.norm == AIM_NORM_RMS;
	t->nl = nl;
	t->top = -1;
	for (int i = 0; i < nl; i++) {
		t->layers[i] = layers[i];
		t->at[layers[i]] = 1;
		if (layers[i] > t->top)
			t->top = layers[i];
	}
	int cap = (m->tune ? m->tune->nparams : 0) + (m->frozen ? 0 : m->nparams);
	t->tt = calloc(cap ? cap : 1, sizeof *t->tt);
	if (!t->tt)
		return aim_error("out of memory");
	if (m->tune) {
		aim_tune *tu = m->tune;
		if (aim_tune_alloc_grads(tu) < 0)
			return AIM_ERR;
		for (int i = 0; i < tu->nparams; i++) {
			aim_param_info *p = &tu->info[i];
			int decay = p->ndim >= 2 && strcmp(p->name, "prompt.tokens");
			if (add_tensor(t, p->name, *p->slot, *p->grad_slot, (long)p->numel, decay, 1.0) < 0)
				return AIM_ERR;
		}
	}
	if (!m->frozen) {
		if (aim_model_alloc_params(m) < 0 || aim_model_alloc_grads(m) < 0)
			return AIM_ERR;
		int L = m->cfg.depth;
		for (int i = 0; i < m->nparams; i++) {
			aim_param_info *p = &m->info[i];
			int l = block_of(p->name);
			if (l > t->top)
				continue; /* above the features: never reached */
			double scale = l >= 0 ? pow(layer_decay, L - l)
				     : !strncmp(p->name, "preprocessor.", 13) ? pow(layer_decay, L + 1)
				     : 1.0;
			if (!strncmp(p->name, "trunk.post_trunk_norm.", 22) && !t->post_norm)
				continue; /* the features are taken before it */
			if (add_tensor(t, p->name, *p->slot, *p->grad_slot, (long)p->numel,
				       aim_decays(p->name), scale) < 0)
				return AIM_ERR;
		}
	}
	if (aim_head_adamw_init(&t->hopt, h) < 0)
		return AIM_ERR;
	if (!(t->hgrad = malloc(h->nparams * sizeof(float))))
		return aim_error("out of memory");
	return AIM_OK;
}

/* The backend buffers of the features and the post-trunk norm (NULL after). */
static void free_feature_buffers(aim_tune_trainer *t)
{
	const aim_backend *be = t->m->be;
	float **bufs[] = {&t->dfeat_dev, &t->avg_dev, &t->davg_dev, &t->pstats_dev};
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
		if (*bufs[i])
			be->free(*bufs[i]);
		*bufs[i] = NULL;
	}
}

void aim_tune_trainer_free(aim_tune_trainer *t)
{
	if (!t->m)
		return;
	const aim_backend *be = t->m->be;
	for (int i = 0; i < t->ntt; i++) {
		be->free(t->tt[i].m);
		be->free(t->tt[i].v);
	}
	free(t->tt);
	aim_head_adamw_free(&t->hopt);
	aim_head_cache_free(&t->cache);
	free(t->hgrad);
	free(t->feat), free(t->pooled), free(t->xhat), free(t->mean), free(t->rstd);
	free(t->logits), free(t->dlogits), free(t->dxhat), free(t->dfeat);
	free(t->drop_factors);
	if (t->dx)
		be->free(t->dx);
	free_feature_buffers(t);
	memset(t, 0, sizeof *t);
}

int aim_tune_trainer_set_drop_path(aim_tune_trainer *t, double rate, uint64_t seed)
{
	if (!(rate >= 0 && rate < 1))
		return aim_error("stochastic depth rate %g is not in [0, 1)", rate);
	if (rate > 0 && t->m->tune && t->m->tune->cfg.kind == AIM_TUNE_ADAPTER)
		return aim_error("stochastic depth with bottleneck adapters is not supported");
	t->drop_path = rate;
	t->drop_seed = seed;
	return AIM_OK;
}

void aim_drop_path_factors(double rate, int depth, uint64_t seed, int64_t first, int b,
			   float *out)
{
	for (int l = 0; l < depth; l++) {
		double p = depth > 1 ? rate * l / (depth - 1) : 0;
		float kept = (float)(1.0 / (1.0 - p));
		for (int j = 0; j < 2; j++)
			for (int i = 0; i < b; i++) {
				uint64_t at = ((uint64_t)(first + i) * (uint64_t)depth + (uint64_t)l) * 2 + j;
				double u = (double)(aim_rng_at(seed, AIM_RNG_DROP_PATH, at) >> 11) *
					   (1.0 / 9007199254740992.0);
				out[((size_t)l * 2 + j) * b + i] = u < p ? 0.0f : kept;
			}
	}
}

const float *aim_tune_trainer_head_grad(const aim_tune_trainer *t)
{
	return t->hgrad;
}

/* Scratch for micro-batches of b images of K tokens. */
static int ensure(aim_tune_trainer *t, int64_t b, int64_t K, size_t nx)
{
	const aim_backend *be = t->m->be;
	int64_t D = t->m->cfg.dim, C = t->head->cfg.classes;
	size_t nf = (size_t)(b * K * D);
	if (nx > t->cap_x) {
		if (t->dx)
			be->free(t->dx);
		t->cap_x = 0;
		if (!(t->dx = be->alloc(nx * sizeof(float))))
			return aim_error("out of %s memory for patches", be->name);
		t->cap_x = nx;
	}
	if (nf > t->cap_f || b > t->cap_b) {
		free_feature_buffers(t);
		free(t->feat), free(t->pooled), free(t->xhat), free(t->logits), free(t->dlogits);
		free(t->dxhat), free(t->dfeat), free(t->mean), free(t->rstd);
		t->feat = malloc(nf * sizeof(float));
		t->pooled = malloc((size_t)(b * D) * sizeof(float));
		t->xhat = malloc(nf * sizeof(float));
		t->dxhat = malloc(nf * sizeof(float));
		t->dfeat = malloc(nf * sizeof(float));
		t->logits = malloc((size_t)(b * C) * sizeof(float));
		t->dlogits = malloc((size_t)(b * C) * sizeof(float));
		t->mean = malloc((size_t)D * sizeof(float));
		t->rstd = malloc((size_t)D * sizeof(float));
		free(t->drop_factors);
		t->drop_factors = malloc((size_t)(2 * t->m->cfg.depth * b) * sizeof(float));
		t->dfeat_dev = be->alloc(nf * sizeof(float));
		if (t->post_norm) {
			t->avg_dev = be->alloc(nf * sizeof(float));
			t->davg_dev = be->alloc(nf * sizeof(float));
			t->pstats_dev = be->alloc((size_t)(2 * b * K) * sizeof(float));
		}
		t->cap_f = nf;
		t->cap_b = b;
		if (!t->feat || !t->pooled || !t->xhat || !t->dxhat || !t->dfeat || !t->logits ||
		    !t->dlogits || !t->mean || !t->rstd || !t->dfeat_dev || !t->drop_factors ||
		    (t->post_norm && (!t->avg_dev || !t->davg_dev || !t->pstats_dev))) {
			t->cap_f = 0;
			t->cap_b = 0;
			return aim_error("out of memory for a micro-batch of %lld", (long long)b);
		}
	}
	return AIM_OK;
}

/* One micro-batch of b images: forward, loss (weighted by w), backward. */
static int micro_step(aim_tune_trainer *t, const float *x, const int64_t *y, int b, int rows,
		      int cols, double w, int64_t first, double *loss, int64_t *correct,
		      float *logits_out)
{
	aim_model *m = t->m;
	const aim_backend *be = m->be;
	aim_head *h = t->head;
	int64_t K = (int64_t)rows * cols, D = m->cfg.dim;
	int C = h->cfg.classes, P = m->cfg.channels * m->cfg.patch * m->cfg.patch;
	size_t nx = (size_t)b * K * P, nf = (size_t)(b * K * D);
	if (ensure(t, b, K, nx) < 0)
		return AIM_ERR;
	be->upload(t->dx, x, nx * sizeof(float));
	aim_forward_opts fo = {.mask = AIM_MASK_NONE, .train = 1, .train_blocks = t->top + 1};
	if (t->drop_path > 0) {
		aim_drop_path_factors(t->drop_path, m->cfg.depth, t->drop_seed, first, b,
				      t->drop_factors);
		fo.branch_scale = t->drop_factors;
	}
	if (aim_model_forward(m, t->dx, b, rows, cols, &fo) < 0)
		return AIM_ERR;
	/* the average of the blocks (AIMv2: kept, and its post-trunk norm) */
	float *avg = t->post_norm ? t->avg_dev : t->dfeat_dev;
	be->zero(avg, nf * sizeof(float));
	for (int i = 0; i < t->nl; i++)
		if (aim_model_patch_tokens_add(m, t->layers[i], 1.0f / (float)t->nl, avg) < 0)
			return AIM_ERR;
	if (t->post_norm)
		aim_model_post_norm_train(m, t->dfeat_dev, t->pstats_dev, avg, b * K);
	be->download(t->feat, t->dfeat_dev, nf * sizeof(float));

	/* the head, in training mode */
	int linear = h->cfg.kind == AIM_PROBE_LINEAR;
	const float *hin = t->feat;
	int64_t rowsn = b * K, hk = K;
	if (linear) {
		for (int64_t s = 0; s < b; s++)
			for (int64_t d = 0; d < D; d++) {
				double acc = 0;
				for (int64_t k = 0; k < K; k++)
					acc += t->feat[(s * K + k) * D + d];
				t->pooled[s * D + d] = (float)(acc / (double)K);
			}
		hin = t->pooled;
		rowsn = b;
		hk = 1;
	}
	aim_head_bn_train_fwd(h, t->xhat, t->mean, t->rstd, hin, rowsn);
	if (aim_head_forward_train(h, &t->cache, t->xhat, b, hk, t->logits) < 0)
		return AIM_ERR;
	int64_t counted;
	double l = aim_head_cross_entropy(t->logits, y, b, C, t->smoothing, t->dlogits, &counted);
	if (!isfinite(l))
		return aim_error("the loss is %g", l);
	*loss += w * l;
	for (int s = 0; s < b; s++)
		*correct += aim_rank_of(t->logits + (size_t)s * C, C, (int)y[s]) == 0;
	if (logits_out)
		memcpy(logits_out, t->logits, (size_t)b * C * sizeof(float));
	for (size_t i = 0; i < (size_t)b * C; i++)
		t->dlogits[i] *= (float)w;
	memset(t->dxhat, 0, (size_t)(rowsn * D) * sizeof(float));
	if (aim_head_backward(h, &t->cache, t->xhat, t->dlogits, t->hgrad, t->dxhat) < 0)
		return AIM_ERR;
	memset(t->dfeat, 0, nf * sizeof(float));
	if (linear) {
		/* BatchNorm backward into d(pooled), then spread over the K tokens */
		float *dp = calloc((size_t)(b * D), sizeof(float));
		if (!dp)
			return aim_error("out of memory");
		aim_head_bn_bwd(dp, t->dxhat, t->xhat, t->rstd, b, (int)D);
		for (int64_t s = 0; s < b; s++)
			for (int64_t k = 0; k < K; k++)
				for (int64_t d = 0; d < D; d++)
					t->dfeat[(s * K + k) * D + d] = dp[s * D + d] / (float)K;
		free(dp);
	} else {
		aim_head_bn_bwd(t->dfeat, t->dxhat, t->xhat, t->rstd, rowsn, (int)D);
	}
	be->upload(t->dfeat_dev, t->dfeat, nf * sizeof(float));
	const float *davg = t->dfeat_dev;
	if (t->post_norm) { /* through the post-trunk norm into the average */
		be->zero(t->davg_dev, nf * sizeof(float));
		aim_model_post_norm_bwd(m, t->davg_dev, t->dfeat_dev, t->avg_dev, t->pstats_dev, b * K);
		davg = t->davg_dev;
	}
	return aim_model_backward_at(m, davg, t->at, 1.0f / (float)t->nl);
}

int aim_tune_trainer_gradients(aim_tune_trainer *t, const float *x, const int64_t *y, int n,
			       int rows, int cols, double *loss, int64_t *correct, float *logits)
{
	aim_model *m = t->m;
	const aim_backend *be = m->be;
	int C = t->head->cfg.classes;
	for (int i = 0; i < n; i++)
		if (y[i] < 0 || y[i] >= C)
			return aim_error("label %lld outside the %d classes", (long long)y[i], C);
	for (int i = 0; i < t->ntt; i++)
		be->zero(t->tt[i].g, (size_t)t->tt[i].n * sizeof(float));
	memset(t->hgrad, 0, t->head->nparams * sizeof(float));
	*loss = 0;
	*correct = 0;
	size_t per = (size_t)rows * cols * m->cfg.channels * m->cfg.patch * m->cfg.patch;
	for (int s = 0; s < n; s += t->micro) {
		int b = n - s < t->micro ? n - s : t->micro;
		if (micro_step(t, x + (size_t)s * per, y + s, b, rows, cols, (double)b / n,
			       t->seen + s, loss, correct, logits ? logits + (size_t)s * C : NULL) < 0)
			return AIM_ERR;
	}
	t->seen += n;
	return AIM_OK;
}

void aim_tune_trainer_update(aim_tune_trainer *t, double lr, double wd)
{
	const aim_backend *be = t->m->be;
	t->step++;
	for (int i = 0; i < t->ntt; i++) {
		aim_tune_tensor *e = &t->tt[i];
		be->adamw(e->w, e->m, e->v, e->g, e->n, lr * e->lr_scale, t->hopt.beta1, t->hopt.beta2,
			  t->hopt.eps, wd, e->decay, t->step);
	}
	aim_head_adamw_step(&t->hopt, t->head, t->hgrad, lr, wd);
}

int aim_tune_trainer_batch(aim_tune_trainer *t, aim_trunk_features *tf, const aim_record *r,
			   const char *what, const int64_t *labels, double lr, double wd,
			   aim_labelled *lab, int64_t *n, double *loss, int64_t *correct)
{
	const float *px;
	int64_t B;
	aim_geometry g;
	*n = 0;
	if (aim_trunk_patches(tf, r, what, &px, &B, &g))
		return AIM_ERR;
	int64_t kept = aim_keep_labelled(lab, px, labels, B, (size_t)(g.K * g.P));
	if (kept <= 0)
		return (int)kept;
	if (aim_tune_trainer_gradients(t, lab->x, lab->y, (int)kept, g.rows, g.cols, loss,
				       correct, NULL))
		return aim_error_prefix("%s", what);
	aim_tune_trainer_update(t, lr, wd);
	*n = kept;
	return AIM_OK;
}

int aim_head_write_model(aim_model *model, const aim_head *h, const char *path)
{
	aim_record mr;
	aim_record_init(&mr);
	aim_record_free(&model->head); /* the head trained here replaces a loaded one */
	aim_record_init(&model->head);
	model->has_head = 0;
	int rc = aim_model_to_record(model, &mr) || aim_head_to_record(h, &mr) ||
		 aim_st_write(path, &mr);
	aim_record_free(&mr);
	return rc ? AIM_ERR : AIM_OK;
}
