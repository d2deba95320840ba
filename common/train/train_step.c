/* One pretraining step (train_step.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "err.h"
#include "train_loss.h"
#include "train_rng.h"
#include "train_step.h"

static void free_scratch(aim_trainer *t)
{
	const aim_backend *be = t->be;
	be->free(t->target); be->free(t->pred); be->free(t->dpred); be->free(t->hin);
	be->free(t->dhin); be->free(t->dnormed); be->free(t->dx);
	free(t->rows); free(t->pos); free(t->host_pred);
	t->target = t->pred = t->dpred = t->hin = t->dhin = t->dnormed = t->dx = NULL;
	t->host_pred = NULL;
	t->rows = t->pos = NULL;
}

/* Scratch for micro-batches of n images, in the backend's memory. */
static int ensure(aim_trainer *t, long n)
{
	if (n <= t->cap_images)
		return 0;
	const aim_backend *be = t->be;
	const long KP = (long)t->geom.K * t->geom.P, KD = (long)t->geom.K * t->model->cfg.dim;
	free_scratch(t);
	t->target = be->alloc(sizeof(float) * n * KP);
	t->pred = be->alloc(sizeof(float) * n * KP);
	t->dpred = be->alloc(sizeof(float) * n * KP);
	t->hin = be->alloc(sizeof(float) * n * KD);
	t->dhin = be->alloc(sizeof(float) * n * KD);
	t->dnormed = be->alloc(sizeof(float) * n * KD);
	t->rows = malloc(sizeof(int) * n * t->geom.K);
	t->pos = malloc(sizeof(int) * n * t->geom.K);
	int dev_ok = 1;
	if (!be->host_memory) { /* patches go up; predictions come down */
		t->dx = be->alloc(sizeof(float) * n * KP);
		t->host_pred = malloc(sizeof(float) * n * KP);
		dev_ok = t->dx && t->host_pred;
	}
	t->cap_images = n;
	if (!t->target || !t->pred || !t->dpred || !t->hin || !t->dhin || !t->dnormed ||
	    !t->rows || !t->pos || !dev_ok) {
		t->cap_images = 0;
		return aim_error("out of %s memory for a micro-batch of %ld images",
				 be->host_memory ? "host" : be->name, n);
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
	t->be = aim_backend_cpu();
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

static void free_device(aim_trainer *t)
{
	const aim_backend *be = t->be;
	if (be->host_memory)
		return;
	aim_head_acts_free(&t->dacts, be);
	float **bufs[] = {&t->dhead_params, &t->dhead_grads, &t->dhead_pos, &t->dm, &t->dv};
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
		be->free(*bufs[i]);
		*bufs[i] = NULL;
	}
	free(t->dw);
	free(t->dg);
	t->dw = t->dg = NULL;
	if (t->dev)
		aim_model_free(t->dev);
	t->dev = NULL;
	t->dev_live = 0;
}

void aim_trainer_free(aim_trainer *t)
{
	if (t->be) {
		free_scratch(t);
		free_device(t);
	}
	aim_pixel_head_free(&t->head);
	aim_optim_free(&t->optim);
	memset(t, 0, sizeof *t);
}

int aim_trainer_set_backend(aim_trainer *t, const aim_backend *be)
{
	if (!be || be == t->be)
		return 0;
	if (t->dev_live)
		return aim_error("the trainer's backend cannot change after the first step");
	free_scratch(t);
	free_device(t);
	t->cap_images = 0;
	t->be = be;
	return ensure(t, t->micro);
}

/* The device state from the host objects: the trunk twin, the head, the
 * moments and the per-tensor pointers of the optimiser's list. */
static int go_live(aim_trainer *t)
{
	const aim_backend *be = t->be;
	if (be->host_memory || t->dev_live)
		return 0;
	aim_model *h = t->model;
	aim_pixel_head *hd = &t->head;
	if (aim_model_create(&t->dev, &h->cfg, be) || aim_model_alloc_params(t->dev) ||
	    aim_model_alloc_grads(t->dev))
		return AIM_ERR;
	for (int i = 0; i < h->nparams; i++) /* slot by slot: the host may be mmapped */
		be->upload(*t->dev->info[i].slot, *h->info[i].slot, h->info[i].numel * sizeof(float));
	const size_t hp = sizeof(float) * (size_t)hd->nparams;
	const size_t hpos = sizeof(float) * (size_t)hd->rows * hd->cols * hd->width;
	const size_t mom = sizeof(float) * (size_t)(t->optim.total ? t->optim.total : 1);
	t->dhead_params = be->alloc(hp);
	t->dhead_grads = be->alloc(hp);
	t->dhead_pos = be->alloc(hpos);
	t->dm = be->alloc(mom);
	t->dv = be->alloc(mom);
	t->dw = calloc(t->optim.n ? t->optim.n : 1, sizeof(float *));
	t->dg = calloc(t->optim.n ? t->optim.n : 1, sizeof(float *));
	if (!t->dhead_params || !t->dhead_grads || !t->dhead_pos || !t->dm || !t->dv || !t->dw ||
	    !t->dg)
		return aim_error("out of %s memory for the training state", be->name);
	be->upload(t->dhead_params, hd->params, hp);
	be->upload(t->dhead_pos, hd->pos, hpos);
	be->upload(t->dm, t->optim.m, sizeof(float) * (size_t)t->optim.total);
	be->upload(t->dv, t->optim.v, sizeof(float) * (size_t)t->optim.total);
	/* optim.t lists the trunk's tensors (in model order), then the head's */
	for (int i = 0; i < t->optim.n; i++) {
		aim_trainable *tr = &t->optim.t[i];
		if (i < h->nparams) {
			t->dw[i] = *t->dev->info[i].slot;
			t->dg[i] = *t->dev->info[i].grad_slot;
		} else {
			t->dw[i] = t->dhead_params + (tr->w - hd->params);
			t->dg[i] = t->dhead_grads + (tr->g - hd->grads);
		}
	}
	t->dev_live = 1;
	return 0;
}

void aim_trainer_sync_host(aim_trainer *t)
{
	if (!t->dev_live)
		return;
	const aim_backend *be = t->be;
	aim_model *h = t->model;
	for (int i = 0; i < h->nparams; i++)
		be->download(*h->info[i].slot, *t->dev->info[i].slot,
			     h->info[i].numel * sizeof(float));
	be->download(t->head.params, t->dhead_params, sizeof(float) * (size_t)t->head.nparams);
	be->download(t->optim.m, t->dm, sizeof(float) * (size_t)t->optim.total);
	be->download(t->optim.v, t->dv, sizeof(float) * (size_t)t->optim.total);
}

static aim_model *trunk(aim_trainer *t) { return t->dev ? t->dev : t->model; }

/* The live pixel head, as trunk() is the live trunk: the host arenas on
 * the CPU, the device copies on a device; *acts gets its activations. */
static aim_head_mem head(aim_trainer *t, aim_head_acts **acts)
{
	if (t->be->host_memory) {
		*acts = &t->head.acts;
		return (aim_head_mem){t->be, t->head.params, t->head.grads, t->head.pos};
	}
	*acts = &t->dacts;
	return (aim_head_mem){t->be, t->dhead_params, t->dhead_grads, t->dhead_pos};
}

/* x (host, [n, K, P]) in the backend's memory: itself on the CPU. */
static const float *patches_in(aim_trainer *t, const float *x, int n)
{
	if (t->be->host_memory)
		return x;
	t->be->upload(t->dx, x, sizeof(float) * (size_t)n * t->geom.K * t->geom.P);
	return t->dx;
}

/* Forward of n images (xin: backend memory) through the trunk with the
 * given prefixes, then the head on the rows that predict a patch outside
 * the prefix (t->rows, t->pred; their count in *M). With train, keeps what
 * the backward needs. */
static int forward(aim_trainer *t, const float *xin, int n, const int *prefix, int train,
		   long *M)
{
	const int K = t->geom.K, D = t->model->cfg.dim;
	aim_forward_opts o = {0};
	o.mask = AIM_MASK_PREFIX;
	o.prefix = prefix;
	o.train = train;
	o.post_norm = 1;
	if (go_live(t) || aim_model_forward(trunk(t), xin, n, t->geom.rows, t->geom.cols, &o))
		return AIM_ERR;
	const float *normed = aim_model_normed(trunk(t));
	if (!normed)
		return aim_error("the trunk kept no post-norm output");
	long m = aim_pixloss_rows(prefix, n, K, t->rows);
	for (long i = 0; i < m; i++)
		t->pos[i] = t->rows[i] % K;
	t->be->gather_rows(t->hin, normed, t->rows, m, D);
	*M = m;
	aim_head_acts *acts;
	aim_head_mem hm = head(t, &acts);
	return aim_pixel_head_forward_on(&t->head, &hm, acts, t->pred, t->hin, m, t->pos);
}

/* The device group of this node's ranks (backend.h group_*), set up once
 * at the first step; every rank learns whether all of them joined. */
static int setup_group(aim_trainer *t)
{
	const aim_backend *be = t->be;
	t->group_tried = 1;
	if (be->host_memory || aim_dist_size() <= 1)
		return 0;
	struct {
		int len;
		char id[252];
	} msg = {-1, {0}};
	const char *why = "the backend has no device group";
	if (be->group_join) {
		if (aim_dist_local_rank() == 0)
			msg.len = be->group_id(msg.id, sizeof msg.id);
		if (aim_dist_bcast_local(&msg, (long)sizeof msg))
			return AIM_ERR;
		double joined = msg.len > 0 && be->group_join(msg.id, (size_t)msg.len,
							      aim_dist_local_rank(),
							      aim_dist_local_size()) == 0;
		if (!joined)
			why = be->group_error();
		if (aim_dist_allreduce_f64(&joined, 1))
			return AIM_ERR;
		t->group = joined == aim_dist_size();
	}
	if (t->group)
		snprintf(t->group_note, sizeof t->group_note,
			 "gradients summed on the GPUs within each node (NCCL)%s",
			 aim_dist_nodes() > 1 ? ", between nodes over MPI" : "");
	else
		snprintf(t->group_note, sizeof t->group_note,
			 "gradients summed through host memory over MPI (%.200s)", why);
	return 0;
}

/* Gradients summed over the ranks: on the CPU with MPI; on a device with
 * the group inside a node (reduce to local rank 0, MPI among those, and
 * back out), else through host memory. */
static int allreduce_grads(aim_trainer *t)
{
	if (t->be->host_memory)
		return aim_dist_allreduce_f32(t->model->grad_arena, (long)t->model->arena_floats) ||
		       aim_dist_allreduce_f32(t->head.grads, t->head.nparams) ? AIM_ERR : 0;
	if (aim_dist_size() <= 1)
		return 0;
	const aim_backend *be = t->be;
	float *dev[2] = {t->dev->grad_arena, t->dhead_grads};
	const long n[2] = {(long)t->model->arena_floats, t->head.nparams};
	const long most = n[0] > n[1] ? n[0] : n[1];
	float *buf = NULL;
	int rc = 0, via_host = !t->group || aim_dist_nodes() > 1;
	if (via_host && (!t->group || aim_dist_local_rank() == 0) &&
	    !(buf = malloc(sizeof(float) * (size_t)most)))
		return aim_error("out of memory");
	for (int i = 0; i < 2 && !rc; i++) {
		if (t->group && aim_dist_nodes() == 1) {
			if (be->group_allreduce(dev[i], n[i]))
				rc = aim_error("%s", be->group_error());
			continue;
		}
		if (t->group && be->group_reduce(dev[i], n[i])) {
			rc = aim_error("%s", be->group_error());
			break;
		}
		if (buf) {
			be->download(buf, dev[i], sizeof(float) * (size_t)n[i]);
			rc = t->group ? aim_dist_allreduce_leaders_f32(buf, n[i])
				      : aim_dist_allreduce_f32(buf, n[i]);
			if (!rc)
				be->upload(dev[i], buf, sizeof(float) * (size_t)n[i]);
		}
		if (!rc && t->group && be->group_bcast(dev[i], n[i]))
			rc = aim_error("%s", be->group_error());
	}
	free(buf);
	return rc ? AIM_ERR : 0;
}

int aim_trainer_gradients(aim_trainer *t, const float *x, const uint64_t *gidx, int B,
			  double *loss)
{
	const int K = t->geom.K, P = t->geom.P, D = t->model->cfg.dim;
	const aim_backend *be = t->be;
	int *prefix = calloc(B ? B : 1, sizeof(int));
	if (!prefix)
		return aim_error("out of memory");
	for (int b = 0; b < B; b++)
		prefix[b] = aim_prefix_len(t->seed, AIM_RNG_PREFIX, gidx[b], K);
	double denom = (double)aim_pixloss_count(prefix, B, K);
	if (aim_dist_allreduce_f64(&denom, 1) || go_live(t) ||
	    (!t->group_tried && setup_group(t))) {
		free(prefix);
		return AIM_ERR;
	}

	if (be->host_memory) {
		aim_optim_zero_grad(&t->optim);
	} else {
		be->zero(t->dev->grad_arena, sizeof(float) * t->dev->arena_floats);
		be->zero(t->dhead_grads, sizeof(float) * (size_t)t->head.nparams);
	}
	double local = 0;
	int rc = 0;
	for (int b0 = 0; b0 < B && !rc; b0 += t->micro) {
		int n = B - b0 < t->micro ? B - b0 : t->micro;
		const float *xb = patches_in(t, x + (size_t)b0 * K * P, n);
		const int *pb = prefix + b0;
		long m;
		if (forward(t, xb, n, pb, 1, &m)) {
			rc = AIM_ERR;
			break;
		}
		be->pixloss_targets(t->target, xb, (long)n * K, P, t->norm_pix, NULL);
		local += be->pixloss_forward(t->pred, t->target, t->rows, m, P, denom);
		be->pixloss_backward(t->pred, t->target, t->rows, m, P, denom, t->dpred);
		be->zero(t->dhin, sizeof(float) * (size_t)m * D);
		aim_head_acts *acts;
		aim_head_mem hm = head(t, &acts);
		aim_pixel_head_backward_on(&t->head, &hm, acts, t->dhin, t->dpred, t->hin);
		/* Rows that predict nothing get no gradient from the loss. */
		be->zero(t->dnormed, sizeof(float) * (size_t)n * K * D);
		be->scatter_rows(t->dnormed, t->dhin, t->rows, m, D);
		rc = aim_model_backward(trunk(t), t->dnormed, 1);
	}
	free(prefix);
	if (rc)
		return rc;
	/* Every rank's gradients were scaled by the global count: summing
	 * them gives the gradient of the global batch's loss. */
	if (aim_dist_allreduce_f64(&local, 1) || allreduce_grads(t))
		return AIM_ERR;
	*loss = local;
	return 0;
}

void aim_trainer_update(aim_trainer *t, double lr, double clip, long step, double *grad_norm)
{
	const aim_backend *be = t->be;
	if (be->host_memory) {
		*grad_norm = aim_grad_clip(&t->optim, clip);
		aim_adamw_step(&t->optim, lr, step + 1);
		return;
	}
	/* aim_grad_clip and aim_adamw_step, tensor by tensor on the device */
	const aim_optim *o = &t->optim;
	double total = 0;
	for (int i = 0; i < o->n; i++)
		total += be->sumsq(t->dg[i], o->t[i].n);
	const double norm = sqrt(total);
	if (clip > 0 && clip / (norm + 1e-6) < 1.0)
		for (int i = 0; i < o->n; i++)
			be->scale(t->dg[i], (float)(clip / (norm + 1e-6)), t->dg[i], (size_t)o->t[i].n);
	for (int i = 0; i < o->n; i++) {
		const aim_trainable *tr = &o->t[i];
		be->adamw(t->dw[i], t->dm + tr->off, t->dv + tr->off, t->dg[i], tr->n, lr, o->beta1,
			  o->beta2, o->eps, o->weight_decay, tr->decay, step + 1);
	}
	*grad_norm = norm;
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
		const float *xb = patches_in(t, x + (size_t)b0 * K * P, m);
		long rows;
		if ((rc = forward(t, xb, m, prefix + b0, 0, &rows)))
			break;
		t->be->pixloss_targets(t->target, xb, (long)m * K, P, t->norm_pix, NULL);
		total += t->be->pixloss_forward(t->pred, t->target, t->rows, rows, P, denom);
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
		if ((rc = forward(t, patches_in(t, x + b0 * KP, m), m, prefix + b0, 0, &rows)))
			break;
		const float *hpred = t->pred;
		if (!t->be->host_memory) {
			t->be->download(t->host_pred, t->pred, sizeof(float) * rows * t->geom.P);
			hpred = t->host_pred;
		}
		float *out = pred + b0 * KP;
		memset(out, 0, sizeof(float) * m * KP);
		for (long i = 0; i < rows; i++)
			memcpy(out + (size_t)t->rows[i] * t->geom.P, hpred + i * t->geom.P,
			       sizeof(float) * t->geom.P);
	}
	free(prefix);
	return rc;
}
