/* The trunk's forward: the patch embedding (with prompts), inference in
 * groups of samples, training with every activation kept, and what the
 * callers read back. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model_internal.h"

/* x = N_patch(patch_embed(patches)) + pos; y is the embedding before the
 * norm (may be x itself when it is not kept). */
static void embed_fwd(const aim_model *m, float *x, float *y, float *mean, float *rstd,
		      const float *patches, int nb, int K)
{
	const aim_config *c = &m->cfg;
	int N = nb * K, P = c->channels * c->patch * c->patch;
	m->be->patch_embed_fwd(y, patches, m->p.patch_w, m->p.patch_b, N, P, c->dim);
	aim_trunk_norm_fwd(m, x, mean, rstd, y, m->p.patch_ln_w, m->p.patch_ln_b, N);
	if (m->st->nmasked) /* inference: one group holds the whole batch then */
		aim_trunk_put_mask_tokens(m, x);
	m->be->add_rows(x, pos_table(m), nb, (size_t)K * c->dim);
}

/* Prompt tokens into rows [0, Np) of each of nb samples of K tokens at x. */
static void put_prompts(const aim_backend *be, float *x, const float *prompt, int nb, int K,
			int Np, int D)
{
	for (int b = 0; b < nb; b++)
		be->copy(x + (size_t)b * K * D, prompt, (size_t)Np * D * sizeof(float));
}

/* x₀ of samples [b0, b0 + nb) into x (their rows of the sequence, K = Np +
 * Kp tokens each): the embedding of their patches; with prompts it is
 * made aside (emb) and its rows move behind each sample's prompt tokens.
 * Training keeps the norm's input and statistics (pre, mean, rstd; pre is
 * x or emb itself at inference). */
static void embed(const aim_model *m, float *x, const float *patches, int b0, int nb,
		  float *pre, float *mean, float *rstd)
{
	const struct aim_model_state *s = m->st;
	const aim_config *c = &m->cfg;
	int D = c->dim, P = c->channels * c->patch * c->patch, Kp = s->Kp, Np = s->Np;
	float *e = Np ? s->emb + (size_t)b0 * Kp * D : x;
	embed_fwd(m, e, pre ? pre : e, mean, rstd, patches + (size_t)b0 * Kp * P, nb, Kp);
	if (Np) {
		m->be->scatter_rows(x - (size_t)b0 * s->K * D, e, s->pidx + (size_t)b0 * Kp,
				    (long)nb * Kp, D);
		put_prompts(m->be, x, prompt_at(m, 0), nb, s->K, Np, D);
	}
}

/* One inference pass over samples [g·group, g·group + n): every buffer is
 * token-major, so a group of samples is a slice of rows of each. */
struct infer_job {
	aim_model *m;
	const float *patches;
	int K, last;
	aim_mask_kind mask;
	const int *prefix;
	int post_norm, group;
};

static void infer_group(void *ctx, int g)
{
	const struct infer_job *j = ctx;
	aim_model *m = j->m;
	struct aim_model_state *s = m->st;
	const aim_config *c = &m->cfg;
	int K = j->K, D = c->dim, Hm = c->mlp_hidden;
	int b0 = g * j->group, nb = s->B - b0 < j->group ? s->B - b0 : j->group;
	int N = nb * K, r = tune_rank(m), a = tune_adapter(m);
	size_t r0 = (size_t)b0 * K;
	float *x = s->cur + r0 * D, *lt = r ? s->lt + r0 * r : NULL, *ah = a ? s->ah + r0 * a : NULL;
	block_io io = {
		.xin = x, .mid = x, .xout = x,
		.ln = s->ln + r0 * D, .qkv = s->qkv + r0 * 3 * D, .att = s->att + r0 * D,
		.fc1 = s->h + r0 * Hm, .h = s->h + r0 * Hm,
		.fc3 = c->mlp == AIM_MLP_SWIGLU ? s->h3 + r0 * Hm : NULL,
		.xa = {lt, lt, lt, lt, lt},
		.mo = s->att + r0 * D, /* free once the projection has read it */
		.hpre = ah, .az = ah,
	};
	const int *prefix = j->prefix ? j->prefix + b0 : NULL;

	embed(m, x, j->patches, b0, nb, NULL, NULL, NULL);
	for (int l = 0; l <= j->last; l++) {
		if (l > 0 && prompt_at(m, l))
			put_prompts(m->be, x, prompt_at(m, l), nb, K, s->Np, D);
		aim_trunk_block_fwd(m, l, &io, nb, K, j->mask, prefix);
		if (s->kept[l])
			m->be->copy(s->out[l] + r0 * D, x, (size_t)N * D * sizeof(float));
	}
	if (j->post_norm)
		aim_trunk_norm_fwd(m, s->normed + r0 * D, NULL, NULL, x, m->p.post_w, m->p.post_b,
				   N);
}

int aim_model_forward(aim_model *m, const float *patches, int B, int rows, int cols,
		      const aim_forward_opts *o)
{
	const aim_config *c = &m->cfg;
	const aim_backend *be = m->be;
	if (B < 1 || rows < 1 || cols < 1)
		return aim_error("empty batch or grid");
	for (int i = 0; i < m->nparams; i++)
		if (!*m->info[i].slot)
			return aim_error("model has no value for %s", m->info[i].name);
	if (aim_trunk_ensure_state(m) < 0)
		return AIM_ERR;
	struct aim_model_state *s = m->st;
	int Np = aim_model_prompt_tokens(m), Kp = rows * cols;
	int K = Kp + Np, D = c->dim, Hm = c->mlp_hidden;
	size_t N = (size_t)B * K;
	if (Np && o->mask != AIM_MASK_NONE)
		return aim_error("prompt tokens need bidirectional attention");
	if (N > (size_t)INT32_MAX / (size_t)(Hm > 3 * D ? Hm : 3 * D))
		return aim_error("batch too large (%zu tokens)", N);

	/* Which blocks to run and keep. */
	unsigned char *keep = s->kept;
	int last = c->depth - 1;
	if (o->train) {
		memset(keep, 1, c->depth);
		if (o->train_blocks > 0 && o->train_blocks < c->depth)
			last = o->train_blocks - 1;
	} else {
		if (o->keep)
			memcpy(keep, o->keep, c->depth);
		else {
			memset(keep, 0, c->depth);
			keep[c->depth - 1] = 1;
		}
		if (!o->post_norm) {
			last = -1;
			for (int l = 0; l < c->depth; l++)
				if (keep[l])
					last = l;
			if (last < 0)
				return aim_error("no block output requested");
		}
	}
	if (o->train && o->branch_scale && tune_adapter(m))
		return aim_error("stochastic depth with bottleneck adapters is not supported");
	if (Np && (o->order || (o->mask_token && o->nmasked)))
		return aim_error("prompt tokens with a sequence order or masked tokens are not supported");
	if (aim_trunk_ensure_pos(m, rows, cols, o->order) < 0 ||
	    aim_trunk_alloc_acts(m, N, B, K, o->train, keep) < 0 ||
	    aim_trunk_keep_masked(m, o, N) < 0 || (Np && aim_trunk_ensure_pidx(m, B, Kp, Np) < 0))
		return AIM_ERR;
	s->B = B; s->rows = rows; s->cols = cols; s->K = K; s->N = N;
	s->Kp = Kp; s->Np = Np;
	s->train = o->train; s->mask = o->mask; s->patches = patches;
	s->post_norm = o->post_norm; s->last_run = last;
	if (o->mask == AIM_MASK_PREFIX) {
		if (!o->prefix)
			return aim_error("prefix-causal attention needs prefix lengths");
		if (s->nprefix < B) {
			free(s->prefix);
			s->prefix = malloc(B * sizeof(int));
			s->nprefix = s->prefix ? B : 0;
			if (!s->prefix)
				return aim_error("out of memory");
		}
		memcpy(s->prefix, o->prefix, B * sizeof(int));
	}
	const int *prefix = o->mask == AIM_MASK_PREFIX ? s->prefix : NULL;

	if (!o->train) {
		/* Inference: on a multi-threaded CPU, groups of whole samples go
		 * through the whole trunk each on one thread — no barrier between
		 * ops, every GEMM still at least ~512 rows. Otherwise (one
		 * thread, one sample, a device backend) the ops parallelise
		 * inside themselves. */
		struct infer_job job = {m, patches, K, last, o->mask, prefix, o->post_norm, 1};
		int nt = be->max_threads ? be->max_threads() : 1;
		if (be->parallel_groups && nt > 1 && B > 1 && !s->nmasked) {
			int per = (B + nt - 1) / nt, want = (512 + K - 1) / K;
			job.group = per < want ? per : want;
			be->parallel_groups(infer_group, &job, (B + job.group - 1) / job.group);
		} else {
			job.group = B;
			infer_group(&job, 0);
		}
		return AIM_OK;
	}

	/* Training: every activation kept. */
	s->has_bscale = o->branch_scale != NULL;
	if (s->has_bscale)
		be->upload(s->bscale, o->branch_scale, sizeof(float) * 2 * (size_t)c->depth * B);
	embed(m, s->res[0], patches, 0, B, s->patch_out, s->pmean, s->prstd);
	for (int l = 0; l <= last; l++) {
		float **xa = s->lora_xa + (size_t)l * AIM_LORA_NT;
		block_io io = {
			.xin = s->res[l], .mid = s->mid_l[l], .xout = s->res[l + 1],
			.ln = s->ln, .qkv = s->qkv_l[l], .att = s->att_l[l], .lse = s->lse_l[l],
			.fc1 = s->fc1_l[l], .fc3 = s->fc3_l[l], .h = s->h,
			.mean1 = s->mean1[l], .rstd1 = s->rstd1[l],
			.mean2 = s->mean2[l], .rstd2 = s->rstd2[l],
			.xa = {xa[0], xa[1], xa[2], xa[3], xa[4]},
			.mo = s->mo_l[l], .hpre = s->hpre_l[l], .az = s->ah,
			.sc_att = s->has_bscale ? s->bscale + (size_t)l * 2 * B : NULL,
			.sc_mlp = s->has_bscale ? s->bscale + (size_t)l * 2 * B + B : NULL,
			.branch = s->dtmp, /* the backward's scratch, free now */
		};
		if (l > 0 && prompt_at(m, l))
			put_prompts(be, s->res[l], prompt_at(m, l), B, K, Np, D);
		aim_trunk_block_fwd(m, l, &io, B, K, o->mask, prefix);
	}
	if (o->post_norm)
		aim_trunk_norm_fwd(m, s->normed, s->post_mean, s->post_rstd, s->res[last + 1],
				   m->p.post_w, m->p.post_b, (int)N);
	return AIM_OK;
}

const float *aim_model_block_output(const aim_model *m, int block)
{
	const struct aim_model_state *s = m->st;
	if (!s || block < 0 || block >= m->cfg.depth || block > s->last_run)
		return NULL;
	if (s->train)
		return s->res[block + 1];
	return s->kept[block] ? s->out[block] : NULL;
}

int aim_model_patch_tokens_add(const aim_model *m, int block, float sc, float *dst)
{
	const struct aim_model_state *s = m->st;
	const float *y = aim_model_block_output(m, block);
	if (!y)
		return aim_error("block %d was not kept", block);
	size_t D = m->cfg.dim;
	if (!s->Np) {
		m->be->axpy(dst, sc, y, s->N * D);
		return AIM_OK;
	}
	for (int b = 0; b < s->B; b++)
		m->be->axpy(dst + (size_t)b * s->Kp * D, sc, y + ((size_t)b * s->K + s->Np) * D,
			    (size_t)s->Kp * D);
	return AIM_OK;
}

const float *aim_model_normed(const aim_model *m)
{
	return m->st && m->st->post_norm ? m->st->normed : NULL;
}

void aim_model_post_norm(const aim_model *m, float *y, const float *x, int64_t n)
{
	aim_trunk_norm_fwd(m, y, NULL, NULL, x, m->p.post_w, m->p.post_b, (int)n);
}

void aim_model_post_norm_train(const aim_model *m, float *y, float *stats, const float *x,
			       int64_t n)
{
	aim_trunk_norm_fwd(m, y, stats, stats + n, x, m->p.post_w, m->p.post_b, (int)n);
}

/* Its backward, beside it (the probe trainer's features read the norm). */
void aim_model_post_norm_bwd(aim_model *m, float *dx, const float *dy, const float *x,
			     const float *stats, int64_t n)
{
	aim_trunk_norm_bwd(m, dx, m->frozen ? NULL : m->g.post_w, m->frozen ? NULL : m->g.post_b,
			   dy, x, m->p.post_w, stats, stats + n, (int)n);
}
