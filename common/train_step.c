/* One pretraining step (train_step.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "err.h"
#include "train_loss.h"
#include "train_rng.h"
#include "train_step.h"

static int ensure(aim_trainer *t, long n)
{
	if (n <= t->cap_images)
		return 0;
	const long KP = (long)t->geom.K * t->geom.P, KD = (long)t->geom.K * t->model->cfg.dim;
	free(t->target); free(t->pred); free(t->dpred); free(t->hin); free(t->dhin);
	free(t->dnormed); free(t->rows); free(t->pos);
	t->target = malloc(sizeof(float) * n * KP);
	t->pred = malloc(sizeof(float) * n * KP);
	t->dpred = malloc(sizeof(float) * n * KP);
	t->hin = malloc(sizeof(float) * n * KD);
	t->dhin = malloc(sizeof(float) * n * KD);
	t->dnormed = malloc(sizeof(float) * n * KD);
	t->rows = malloc(sizeof(int) * n * t->geom.K);
	t->pos = malloc(sizeof(int) * n * t->geom.K);
	t->cap_images = n;
	if (!t->target || !t->pred || !t->dpred || !t->hin || !t->dhin || !t->dnormed ||
	    !t->rows || !t->pos) {
		t->cap_images = 0;
		return aim_error("out of memory for a micro-batch of %ld images", n);
	}
	return 0;
}

int aim_trainer_init(aim_trainer *t, aim_model *model, int head_blocks, int head_dim,
		     const aim_geometry *g, int norm_pix, uint64_t seed, int micro)
{
	memset(t, 0, sizeof *t);
	t->model = model;
	t->geom = *g;
	t->norm_pix = norm_pix;
	t->seed = seed;
	t->micro = micro;
	aim_optim_init(&t->optim);
	if (aim_pixel_head_new(&t->head, model->cfg.dim, head_dim, head_blocks, g->P, g->rows,
			       g->cols))
		return AIM_ERR;
	if (!model->grad_arena && aim_model_alloc_grads(model))
		return AIM_ERR;
	for (int i = 0; i < model->nparams; i++) {
		const aim_param_info *p = &model->info[i];
		if (aim_optim_add(&t->optim, p->name, *p->slot, *p->grad_slot, (long)p->numel, -1))
			return AIM_ERR;
	}
	char name[200];
	for (int i = 0; i < t->head.nt; i++) {
		aim_head_tensor *h = &t->head.t[i];
		snprintf(name, sizeof name, AIM_PIXEL_HEAD_PREFIX "%s", h->suffix);
		if (aim_optim_add(&t->optim, name, t->head.params + h->off, t->head.grads + h->off,
				  h->n, -1))
			return AIM_ERR;
	}
	if (aim_optim_alloc(&t->optim))
		return AIM_ERR;
	return ensure(t, micro);
}

void aim_trainer_free(aim_trainer *t)
{
	aim_pixel_head_free(&t->head);
	aim_optim_free(&t->optim);
	free(t->target); free(t->pred); free(t->dpred); free(t->hin); free(t->dhin);
	free(t->dnormed); free(t->rows); free(t->pos);
	memset(t, 0, sizeof *t);
}

/* Forward of n images through the trunk with the given prefixes, then the
 * head on the rows that predict a patch outside the prefix (t->rows,
 * t->pred; their count in *M). With train, keeps what the backward needs. */
static int forward(aim_trainer *t, const float *x, int n, const int *prefix, int train, long *M)
{
	const int K = t->geom.K, D = t->model->cfg.dim;
	aim_forward_opts o = {0};
	o.mask = AIM_MASK_PREFIX;
	o.prefix = prefix;
	o.train = train;
	o.post_norm = 1;
	if (aim_model_forward(t->model, x, n, t->geom.rows, t->geom.cols, &o))
		return AIM_ERR;
	const float *normed = aim_model_normed(t->model);
	if (!normed)
		return aim_error("the trunk kept no post-norm output");
	long m = aim_pixloss_rows(prefix, n, K, t->rows);
	#pragma omp parallel for schedule(static)
	for (long i = 0; i < m; i++) {
		memcpy(t->hin + i * D, normed + (size_t)t->rows[i] * D, sizeof(float) * D);
		t->pos[i] = t->rows[i] % K;
	}
	*M = m;
	return aim_pixel_head_forward(&t->head, t->pred, t->hin, m, t->pos);
}

int aim_trainer_gradients(aim_trainer *t, const float *x, const uint64_t *gidx, int B,
			  double *loss)
{
	const int K = t->geom.K, P = t->geom.P, D = t->model->cfg.dim;
	int *prefix = calloc(B ? B : 1, sizeof(int));
	if (!prefix)
		return aim_error("out of memory");
	for (int b = 0; b < B; b++)
		prefix[b] = aim_prefix_len(t->seed, AIM_RNG_PREFIX, gidx[b], K);
	double denom = (double)aim_pixloss_count(prefix, B, K);
	if (aim_dist_allreduce_f64(&denom, 1)) {
		free(prefix);
		return AIM_ERR;
	}

	aim_optim_zero_grad(&t->optim);
	double local = 0;
	int rc = 0;
	for (int b0 = 0; b0 < B && !rc; b0 += t->micro) {
		int n = B - b0 < t->micro ? B - b0 : t->micro;
		const float *xb = x + (size_t)b0 * K * P;
		const int *pb = prefix + b0;
		long m;
		if (forward(t, xb, n, pb, 1, &m)) {
			rc = AIM_ERR;
			break;
		}
		aim_pixloss_targets(t->target, xb, (long)n * K, P, t->norm_pix, NULL);
		local += aim_pixloss_forward(t->pred, t->target, t->rows, m, P, denom);
		aim_pixloss_backward(t->pred, t->target, t->rows, m, P, denom, t->dpred);
		memset(t->dhin, 0, sizeof(float) * (size_t)m * D);
		aim_pixel_head_backward(&t->head, t->dhin, t->dpred, t->hin);
		/* Rows that predict nothing get no gradient from the loss. */
		memset(t->dnormed, 0, sizeof(float) * (size_t)n * K * D);
		#pragma omp parallel for schedule(static)
		for (long i = 0; i < m; i++)
			memcpy(t->dnormed + (size_t)t->rows[i] * D, t->dhin + i * D, sizeof(float) * D);
		rc = aim_model_backward(t->model, t->dnormed, 1);
	}
	free(prefix);
	if (rc)
		return rc;
	/* Every rank's gradients were scaled by the global count: summing
	 * them gives the gradient of the global batch's loss. */
	if (aim_dist_allreduce_f64(&local, 1) ||
	    aim_dist_allreduce_f32(t->model->grad_arena, (long)t->model->arena_floats) ||
	    aim_dist_allreduce_f32(t->head.grads, t->head.nparams))
		return AIM_ERR;
	*loss = local;
	return 0;
}

void aim_trainer_update(aim_trainer *t, double lr, double clip, long step, double *grad_norm)
{
	*grad_norm = aim_grad_clip(&t->optim, clip);
	aim_adamw_step(&t->optim, lr, step + 1);
}

int aim_trainer_eval(aim_trainer *t, const float *x, int n, double *loss)
{
	const int K = t->geom.K, P = t->geom.P;
	int *prefix = calloc(n ? n : 1, sizeof(int));
	if (!prefix)
		return aim_error("out of memory");
	for (int i = 0; i < n; i++)
		prefix[i] = aim_prefix_len(t->seed, AIM_RNG_VAL, (uint64_t)i, K);
	double denom = (double)aim_pixloss_count(prefix, n, K), total = 0;
	int rc = 0;
	for (int b0 = 0; b0 < n; b0 += t->micro) {
		int m = n - b0 < t->micro ? n - b0 : t->micro;
		const float *xb = x + (size_t)b0 * K * P;
		long rows;
		if ((rc = forward(t, xb, m, prefix + b0, 0, &rows)))
			break;
		aim_pixloss_targets(t->target, xb, (long)m * K, P, t->norm_pix, NULL);
		total += aim_pixloss_forward(t->pred, t->target, t->rows, rows, P, denom);
	}
	free(prefix);
	*loss = total;
	return rc;
}

int aim_trainer_predict(aim_trainer *t, const float *x, int n, int S, float *pred)
{
	const size_t KP = (size_t)t->geom.K * t->geom.P;
	int *prefix = calloc(n ? n : 1, sizeof(int));
	if (!prefix)
		return aim_error("out of memory");
	for (int i = 0; i < n; i++)
		prefix[i] = S;
	int rc = 0;
	for (int b0 = 0; b0 < n && !rc; b0 += t->micro) {
		int m = n - b0 < t->micro ? n - b0 : t->micro;
		long rows;
		if ((rc = forward(t, x + b0 * KP, m, prefix + b0, 0, &rows)))
			break;
		float *out = pred + b0 * KP;
		memset(out, 0, sizeof(float) * m * KP);
		for (long i = 0; i < rows; i++)
			memcpy(out + (size_t)t->rows[i] * t->geom.P, t->pred + i * t->geom.P,
			       sizeof(float) * t->geom.P);
	}
	free(prefix);
	return rc;
}
