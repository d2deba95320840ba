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
	be->free(t->pred_all); be->free(t->dpred_all);
	free(t->xperm); free(t->mrows); free(t->trows);
	t->target = t->pred = t->dpred = t->hin = t->dhin = t->dnormed = t->dx = NULL;
	t->host_pred = t->pred_all = t->dpred_all = t->xperm = NULL;
	t->rows = t->pos = t->mrows = t->trows = NULL;
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
	if (t->order)
		dev_ok &= (t->xperm = malloc(sizeof(float) * n * KP)) != NULL;
	if (t->v.objective == AIM_OBJ_MASKED)
		dev_ok &= (t->mrows = malloc(sizeof(int) * n * t->geom.K)) &&
			  (t->trows = malloc(sizeof(int) * n * t->geom.K));
	if (t->v.head == AIM_HEAD_TRANSFORMER)
		dev_ok &= (t->pred_all = be->alloc(sizeof(float) * n * KP)) &&
			  (t->dpred_all = be->alloc(sizeof(float) * n * KP));
	if (!be->host_memory) { /* patches go up; predictions come down */
		t->dx = be->alloc(sizeof(float) * n * KP);
		t->host_pred = malloc(sizeof(float) * n * KP);
		dev_ok &= t->dx && t->host_pred;
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
	aim_variant v = aim_variant_default();
	return aim_trainer_init_variant(t, model, &v, head_blocks, head_dim, g, norm_pix, seed,
					micro);
}

void aim_trainer_init_mask_token(aim_trainer *t)
{
	if (!t->mtok)
		return;
	aim_rng rng;
	aim_rng_init(&rng, t->seed, AIM_RNG_INIT);
	rng.next = 1u << 31;
	for (int i = 0; i < t->model->cfg.dim; i++) {
		double u1 = 1.0 - aim_rng_uniformf(&rng); /* (0, 1] */
		double u2 = aim_rng_uniformf(&rng);
		t->mtok[i] = (float)(0.02 * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
	}
}

int aim_trainer_init_variant(aim_trainer *t, aim_model *model, const aim_variant *v,
			     int head_blocks, int head_dim, const aim_geometry *g, int norm_pix,
			     uint64_t seed, int micro)
{
	memset(t, 0, sizeof *t);
	t->v = *v;
	t->model = model;
	t->geom = *g;
	t->norm_pix = norm_pix;
	t->seed = seed;
	t->micro = micro;
	t->be = aim_backend_cpu();
	aim_optim_init(&t->optim);
	if (aim_pixel_head_new_kind(&t->head, v->head, model->cfg.dim, head_dim, head_blocks,
				    model->cfg.heads, v->objective != AIM_OBJ_MASKED, g->P, g->rows,
				    g->cols))
		return AIM_ERR;
	if (v->order != AIM_ORDER_RASTER) {
		if (v->objective == AIM_OBJ_MASKED)
			return aim_error("the masked objective has no order (bidirectional attention)");
		if (!(t->order = malloc(sizeof(int) * g->K)) ||
		    aim_patch_order(t->order, v->order, g->rows, g->cols, seed))
			return aim_error("out of memory");
	}
	if (v->objective == AIM_OBJ_MASKED) {
		const int D = model->cfg.dim;
		t->mtok = calloc(D, sizeof(float));
		t->mtok_g = calloc(D, sizeof(float));
		t->mflags = malloc(g->K);
		t->mscratch = malloc(sizeof(int) * g->K);
		if (!t->mtok || !t->mtok_g || !t->mflags || !t->mscratch)
			return aim_error("out of memory");
	}
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
	if (t->mtok && aim_optim_add(&t->optim, AIM_MASK_TOKEN_NAME, t->mtok, t->mtok_g,
				     model->cfg.dim, 0))
		return AIM_ERR;
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
	float **bufs[] = {&t->dhead_params, &t->dhead_grads, &t->dhead_pos, &t->dm, &t->dv,
			  &t->dmtok, &t->dmtok_g};
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
	free(t->order); free(t->mtok); free(t->mtok_g); free(t->mflags); free(t->mscratch);
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
	const size_t D = sizeof(float) * (size_t)h->cfg.dim;
	if (t->mtok && (!(t->dmtok = be->alloc(D)) || !(t->dmtok_g = be->alloc(D))))
		return aim_error("out of %s memory for the mask token", be->name);
	if (!t->dhead_params || !t->dhead_grads || !t->dhead_pos || !t->dm || !t->dv || !t->dw ||
	    !t->dg)
		return aim_error("out of %s memory for the training state", be->name);
	if (t->mtok)
		be->upload(t->dmtok, t->mtok, D);
	be->upload(t->dhead_params, hd->params, hp);
	be->upload(t->dhead_pos, hd->pos, hpos);
	be->upload(t->dm, t->optim.m, sizeof(float) * (size_t)t->optim.total);
	be->upload(t->dv, t->optim.v, sizeof(float) * (size_t)t->optim.total);
	/* optim.t lists the trunk's tensors (in model order), then the head's,
	 * then the mask token */
	for (int i = 0; i < t->optim.n; i++) {
		aim_trainable *tr = &t->optim.t[i];
		if (i < h->nparams) {
			t->dw[i] = *t->dev->info[i].slot;
			t->dg[i] = *t->dev->info[i].grad_slot;
		} else if (tr->w == t->mtok) {
			t->dw[i] = t->dmtok;
			t->dg[i] = t->dmtok_g;
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
	if (t->mtok)
		be->download(t->mtok, t->dmtok, sizeof(float) * (size_t)h->cfg.dim);
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

/* x (host, [n, K, P], raster places) as the trunk reads it: in the order
 * (each image's patches permuted on the host), in the backend's memory. */
static const float *patches_in(aim_trainer *t, const float *x, int n)
{
	const int K = t->geom.K, P = t->geom.P;
	if (t->order) {
		for (int b = 0; b < n; b++)
			for (int k = 0; k < K; k++)
				memcpy(t->xperm + ((size_t)b * K + k) * P,
				       x + ((size_t)b * K + t->order[k]) * P, sizeof(float) * P);
		x = t->xperm;
	}
	if (t->be->host_memory)
		return x;
	t->be->upload(t->dx, x, sizeof(float) * (size_t)n * K * P);
	return t->dx;
}

/* The grid place of sequence step k. */
static int place(const aim_trainer *t, int k) { return t->order ? t->order[k] : k; }

/* The masked objective: t->mrows gets the masked rows of n images whose
 * masks are samples idx[0..n) (or first + 0..n) of the stream; returns
 * their count. */
static long draw_masks(aim_trainer *t, uint64_t stream, const uint64_t *idx, uint64_t first, int n)
{
	const int K = t->geom.K, count = aim_mask_count(t->v.mask_ratio, K);
	long nm = 0;
	for (int b = 0; b < n; b++) {
		aim_mask_places(t->mflags, t->mscratch, t->seed, stream, idx ? idx[b] : first + b, K,
				count);
		for (int q = 0; q < K; q++)
			if (t->mflags[q])
				t->mrows[nm++] = b * K + q;
	}
	return nm;
}

/* The pixel loss reads the target of row r at row r + 1 (next-patch
 * prediction); a masked patch is its own target, so it is handed r − 1. */
static const int *loss_rows(aim_trainer *t, long m)
{
	if (t->v.objective != AIM_OBJ_MASKED)
		return t->rows;
	for (long i = 0; i < m; i++)
		t->trows[i] = t->rows[i] - 1;
	return t->trows;
}

/* Forward of n images (xin: backend memory, in sequence order) through the
 * trunk — prefix-causal with the given prefixes, causal, or bidirectional
 * with the nm masked rows of t->mrows — then the head on the rows that
 * predict something (t->rows, their grid positions t->pos, predictions
 * t->pred; their count in *M). The transformer head runs on every row
 * (t->pred_all) and the predicting rows are gathered from it. With train,
 * keeps what the backward needs. */
static int forward(aim_trainer *t, const float *xin, int n, const int *prefix, long nm, int train,
		   long *M)
{
	const int K = t->geom.K, D = t->model->cfg.dim, P = t->geom.P;
	const int masked = t->v.objective == AIM_OBJ_MASKED;
	aim_forward_opts o = {0};
	o.mask = masked ? AIM_MASK_NONE : t->v.attention == AIM_ATTN_CAUSAL ? AIM_MASK_CAUSAL
									     : AIM_MASK_PREFIX;
	o.prefix = prefix;
	o.train = train;
	o.post_norm = 1;
	o.order = t->order;
	if (go_live(t))
		return AIM_ERR;
	if (masked) {
		o.masked_rows = t->mrows;
		o.nmasked = nm;
		o.mask_token = t->dev_live ? t->dmtok : t->mtok;
		o.mask_token_grad = t->dev_live ? t->dmtok_g : t->mtok_g;
	}
	if (aim_model_forward(trunk(t), xin, n, t->geom.rows, t->geom.cols, &o))
		return AIM_ERR;
	const float *normed = aim_model_normed(trunk(t));
	if (!normed)
		return aim_error("the trunk kept no post-norm output");
	long m = nm;
	if (masked)
		memcpy(t->rows, t->mrows, sizeof(int) * nm);
	else
		m = aim_pixloss_rows(prefix, n, K, t->rows);
	*M = m;
	aim_head_acts *acts;
	aim_head_mem hm = head(t, &acts);
	if (t->v.head == AIM_HEAD_TRANSFORMER) {
		for (long i = 0; i < (long)n * K; i++)
			t->pos[i] = place(t, (int)(i % K));
		if (aim_pixel_head_forward_on(&t->head, &hm, acts, t->pred_all, normed, (long)n * K,
					      t->pos))
			return AIM_ERR;
		t->be->gather_rows(t->pred, t->pred_all, t->rows, m, P);
		return 0;
	}
	for (long i = 0; i < m; i++)
		t->pos[i] = place(t, t->rows[i] % K);
	t->be->gather_rows(t->hin, normed, t->rows, m, D);
	return aim_pixel_head_forward_on(&t->head, &hm, acts, t->pred, t->hin, m, t->pos);
}

/* The head's and the trunk's backward from dpred (t->dpred, [m, P]). */
static int backward(aim_trainer *t, int n, long m)
{
	const int K = t->geom.K, D = t->model->cfg.dim, P = t->geom.P;
	const aim_backend *be = t->be;
	aim_head_acts *acts;
	aim_head_mem hm = head(t, &acts);
	/* Rows that predict nothing get no gradient from the loss. */
	be->zero(t->dnormed, sizeof(float) * (size_t)n * K * D);
	if (t->v.head == AIM_HEAD_TRANSFORMER) {
		be->zero(t->dpred_all, sizeof(float) * (size_t)n * K * P);
		be->scatter_rows(t->dpred_all, t->dpred, t->rows, m, P);
		aim_pixel_head_backward_on(&t->head, &hm, acts, t->dnormed, t->dpred_all,
					   aim_model_normed(trunk(t)));
	} else {
		be->zero(t->dhin, sizeof(float) * (size_t)m * D);
		aim_pixel_head_backward_on(&t->head, &hm, acts, t->dhin, t->dpred, t->hin);
		be->scatter_rows(t->dnormed, t->dhin, t->rows, m, D);
	}
	return aim_model_backward(trunk(t), t->dnormed, 1);
}

/* The prefix lengths of B images: drawn for prefix attention (training
 * samples gidx, or validation images 0..B), 1 for causal attention (every
 * patch after the first predicted); the masked objective has none. Returns
 * the patches predicted per image in *count (masked: per image). */
static int *prefixes(const aim_trainer *t, const uint64_t *gidx, int B, uint64_t stream)
{
	int *prefix = calloc(B ? B : 1, sizeof(int));
	if (!prefix) {
		aim_error("out of memory");
		return NULL;
	}
	for (int b = 0; b < B; b++)
		prefix[b] = t->v.attention == AIM_ATTN_CAUSAL || t->v.objective == AIM_OBJ_MASKED
				    ? 1
				    : aim_prefix_len(t->seed, stream, gidx ? gidx[b] : (uint64_t)b,
						     t->geom.K);
	return prefix;
}

/* Patches predicted in B images. */
static double predicted(const aim_trainer *t, const int *prefix, int B)
{
	if (t->v.objective == AIM_OBJ_MASKED)
		return (double)B * aim_mask_count(t->v.mask_ratio, t->geom.K);
	return (double)aim_pixloss_count(prefix, B, t->geom.K);
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
	const long D = t->model->cfg.dim;
	if (t->be->host_memory)
		return aim_dist_allreduce_f32(t->model->grad_arena, (long)t->model->arena_floats) ||
		       aim_dist_allreduce_f32(t->head.grads, t->head.nparams) ||
		       (t->mtok_g && aim_dist_allreduce_f32(t->mtok_g, D)) ? AIM_ERR : 0;
	if (aim_dist_size() <= 1)
		return 0;
	const aim_backend *be = t->be;
	float *dev[3] = {t->dev->grad_arena, t->dhead_grads, t->dmtok_g};
	const long n[3] = {(long)t->model->arena_floats, t->head.nparams, D};
	const int narrays = t->dmtok_g ? 3 : 2;
	long most = n[0] > n[1] ? n[0] : n[1];
	most = most > D ? most : D;
	float *buf = NULL;
	int rc = 0, via_host = !t->group || aim_dist_nodes() > 1;
	if (via_host && (!t->group || aim_dist_local_rank() == 0) &&
	    !(buf = malloc(sizeof(float) * (size_t)most)))
		return aim_error("out of memory");
	for (int i = 0; i < narrays && !rc; i++) {
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
	const int K = t->geom.K, P = t->geom.P;
	const aim_backend *be = t->be;
	int *prefix = prefixes(t, gidx, B, AIM_RNG_PREFIX);
	if (!prefix)
		return AIM_ERR;
	double denom = predicted(t, prefix, B);
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
		if (t->dmtok_g)
			be->zero(t->dmtok_g, sizeof(float) * (size_t)t->model->cfg.dim);
	}
	double local = 0;
	int rc = 0;
	for (int b0 = 0; b0 < B && !rc; b0 += t->micro) {
		int n = B - b0 < t->micro ? B - b0 : t->micro;
		const float *xb = patches_in(t, x + (size_t)b0 * K * P, n);
		long nm = t->mrows ? draw_masks(t, AIM_RNG_MASK, gidx + b0, 0, n) : 0, m;
		if (forward(t, xb, n, prefix + b0, nm, 1, &m)) {
			rc = AIM_ERR;
			break;
		}
		const int *lr = loss_rows(t, m);
		be->pixloss_targets(t->target, xb, (long)n * K, P, t->norm_pix, NULL);
		local += be->pixloss_forward(t->pred, t->target, lr, m, P, denom);
		be->pixloss_backward(t->pred, t->target, lr, m, P, denom, t->dpred);
		rc = backward(t, n, m);
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

/* The chunk of the sequence that the patch predicted by loss row i lies
 * in: its step (autoregressive: the row's step + 1; masked: its place)
 * among N equal parts of the K steps. */
static int chunk_of(const aim_trainer *t, int row, int nchunks)
{
	const int K = t->geom.K;
	const int step = row % K + (t->v.objective != AIM_OBJ_MASKED);
	return (int)((long)step * nchunks / K);
}

int aim_trainer_eval(aim_trainer *t, const float *x, int n, double *loss)
{
	return aim_trainer_eval_chunks(t, x, n, 0, loss, NULL);
}

int aim_trainer_eval_chunks(aim_trainer *t, const float *x, int n, int nchunks, double *loss,
			    double *chunk_loss)
{
	const int K = t->geom.K, P = t->geom.P;
	int *prefix = prefixes(t, NULL, n, AIM_RNG_VAL);
	int *sel = nchunks > 0 ? malloc(sizeof(int) * (size_t)t->micro * K) : NULL;
	int *selrows = nchunks > 0 ? malloc(sizeof(int) * (size_t)t->micro * K) : NULL;
	double *count = nchunks > 0 ? calloc((size_t)nchunks, sizeof(double)) : NULL;
	if (!prefix || (nchunks > 0 && (!sel || !selrows || !count))) {
		free(prefix); free(sel); free(selrows); free(count);
		return aim_error("out of memory");
	}
	for (int c = 0; c < nchunks; c++)
		chunk_loss[c] = 0;
	double denom = predicted(t, prefix, n), total = 0;
	int rc = 0;
	for (int b0 = 0; b0 < n; b0 += t->micro) {
		int m = n - b0 < t->micro ? n - b0 : t->micro;
		const float *xb = patches_in(t, x + (size_t)b0 * K * P, m);
		long nm = t->mrows ? draw_masks(t, AIM_RNG_VAL_MASK, NULL, (uint64_t)b0, m) : 0, rows;
		if ((rc = forward(t, xb, m, prefix + b0, nm, 0, &rows)))
			break;
		t->be->pixloss_targets(t->target, xb, (long)m * K, P, t->norm_pix, NULL);
		const int *lr = loss_rows(t, rows);
		total += t->be->pixloss_forward(t->pred, t->target, lr, rows, P, denom);
		/* each chunk: its rows' predictions gathered (into dpred, free
		 * while evaluating), their summed loss */
		for (int c = 0; c < nchunks; c++) {
			long mc = 0;
			for (long i = 0; i < rows; i++)
				if (chunk_of(t, t->rows[i], nchunks) == c) {
					sel[mc] = (int)i;
					selrows[mc++] = lr[i];
				}
			if (!mc)
				continue;
			t->be->gather_rows(t->dpred, t->pred, sel, mc, P);
			chunk_loss[c] += t->be->pixloss_forward(t->dpred, t->target, selrows, mc, P, 1.0);
			count[c] += (double)mc;
		}
	}
	for (int c = 0; c < nchunks; c++)
		chunk_loss[c] = count[c] > 0 ? chunk_loss[c] / count[c] : NAN;
	free(prefix); free(sel); free(selrows); free(count);
	*loss = total;
	return rc;
}

int aim_trainer_predict(aim_trainer *t, const float *x, int n, int S, float *pred,
			unsigned char *given)
{
	const int K = t->geom.K, P = t->geom.P;
	const size_t KP = (size_t)K * P;
	const int masked = t->v.objective == AIM_OBJ_MASKED;
	int *prefix = calloc(n ? n : 1, sizeof(int));
	if (!prefix)
		return aim_error("out of memory");
	for (int i = 0; i < n; i++)
		prefix[i] = S;
	memset(pred, 0, sizeof(float) * n * KP);
	memset(given, 1, (size_t)n * K);
	int rc = 0;
	for (int b0 = 0; b0 < n && !rc; b0 += t->micro) {
		int m = n - b0 < t->micro ? n - b0 : t->micro;
		long rows, nm = masked ? draw_masks(t, AIM_RNG_VAL_MASK, NULL, (uint64_t)b0, m) : 0;
		if ((rc = forward(t, patches_in(t, x + b0 * KP, m), m, prefix + b0, nm, 0, &rows)))
			break;
		const float *hpred = t->pred;
		if (!t->be->host_memory) {
			t->be->download(t->host_pred, t->pred, sizeof(float) * rows * P);
			hpred = t->host_pred;
		}
		/* row b·K + k predicts step k + 1 (masked: step k) of image b */
		for (long i = 0; i < rows; i++) {
			int b = t->rows[i] / K, k = t->rows[i] % K + !masked;
			size_t at = (size_t)(b0 + b) * K + place(t, k);
			memcpy(pred + at * P, hpred + i * P, sizeof(float) * P);
			given[at] = 0;
		}
	}
	free(prefix);
	return rc;
}
