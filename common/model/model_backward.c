/* The trunk's backward: every block run from the top one down, the
 * prompt tokens' and the embedding's gradients. */

#include "err.h"
#include "model_internal.h"

static float *prompt_grad_at(const aim_model *m, int l)
{
	const aim_tune *t = m->tune;
	if (!prompt_at(m, l) || !t->gprompt)
		return NULL;
	return t->gprompt + (size_t)(t->cfg.deep ? l : 0) * t->cfg.prompts * t->dim;
}

/* Every block's backward from the top one run down to block 0, then the
 * embedding's. dres holds dL/d(output of the top block) on entry; with
 * `at`, scale·dy (patch tokens) joins at the output of each flagged block. */
static int backward_blocks(aim_model *m, const float *dy, const unsigned char *at, float scale)
{
	struct aim_model_state *s = m->st;
	const aim_backend *be = m->be;
	const aim_config *c = &m->cfg;
	int B = s->B, K = s->K, Kp = s->Kp, Np = s->Np, D = c->dim;
	int P = c->channels * c->patch * c->patch;
	size_t ND = s->N * (size_t)D;
	const int *prefix = s->mask == AIM_MASK_PREFIX ? s->prefix : NULL;
	float *dres = s->dres;
	for (int l = s->last_run; l >= 0; l--) {
		if (at && at[l]) {
			if (Np)
				for (int b = 0; b < B; b++)
					be->axpy(dres + ((size_t)b * K + Np) * D, scale,
						 dy + (size_t)b * Kp * D, (size_t)Kp * D);
			else
				be->axpy(dres, scale, dy, ND);
		}
		aim_trunk_block_bwd(m, l, B, K, prefix);
		/* the prompt tokens entering this block: their gradient is
		 * theirs, and nothing flows into the rows they replaced */
		float *gp = prompt_grad_at(m, l);
		if (Np && prompt_at(m, l))
			for (int b = 0; b < B; b++) {
				float *row = dres + (size_t)b * K * D;
				if (gp)
					be->axpy(gp, 1.0f, row, (size_t)Np * D);
				be->zero(row, (size_t)Np * D * sizeof(float));
			}
	}
	if (m->frozen)
		return AIM_OK;
	/* embedding: x0 = N_patch(patch_embed(patches)) + pos; a learned
	 * table's gradient is the sum over the batch. */
	const float *demb = dres;
	if (Np) {
		be->gather_rows(s->dmid, dres, s->pidx, (long)B * Kp, D);
		demb = s->dmid;
	}
	int Mp = B * Kp;
	if (c->pos == AIM_POS_LEARNED)
		for (int b = 0; b < B; b++)
			be->axpy(m->g.pos_embed, 1.0f, demb + (size_t)b * Kp * D, (size_t)Kp * D);
	/* masked rows carry the mask token instead of their patch (never with
	 * prompts: demb is dres then) */
	if (s->nmasked)
		aim_trunk_put_mask_tokens_bwd(m, dres);
	be->zero(s->dtmp, (size_t)Mp * D * sizeof(float));
	aim_trunk_norm_bwd(m, s->dtmp, m->g.patch_ln_w, m->g.patch_ln_b, demb, s->patch_out,
			   m->p.patch_ln_w, s->pmean, s->prstd, Mp);
	be->patch_embed_bwd(m->g.patch_w, m->g.patch_b, s->dtmp, s->patches, Mp, P, D);
	return AIM_OK;
}

static int backward_ready(const aim_model *m)
{
	const struct aim_model_state *s = m->st;
	if (!s || !s->train)
		return aim_error("backward needs a training forward first");
	if (!m->frozen && !m->grad_arena)
		return aim_error("backward needs the gradient arena (aim_model_alloc_grads)");
	return AIM_OK;
}

int aim_model_backward(aim_model *m, const float *dy, int dy_is_normed)
{
	if (backward_ready(m) < 0)
		return AIM_ERR;
	struct aim_model_state *s = m->st;
	const aim_backend *be = m->be;
	if (dy_is_normed && !s->post_norm)
		return aim_error("backward from the post-trunk norm needs a forward with post_norm");
	size_t ND = s->N * (size_t)m->cfg.dim;
	be->zero(s->dres, ND * sizeof(float));
	if (dy_is_normed)
		aim_trunk_norm_bwd(m, s->dres, m->frozen ? NULL : m->g.post_w,
				   m->frozen ? NULL : m->g.post_b, dy, s->res[s->last_run + 1],
				   m->p.post_w, s->post_mean, s->post_rstd, (int)s->N);
	else
		be->copy(s->dres, dy, ND * sizeof(float));
	return backward_blocks(m, NULL, NULL, 0.0f);
}

int aim_model_backward_at(aim_model *m, const float *dy, const unsigned char *at, float scale)
{
	if (backward_ready(m) < 0)
		return AIM_ERR;
	struct aim_model_state *s = m->st;
	m->be->zero(s->dres, s->N * (size_t)m->cfg.dim * sizeof(float));
	return backward_blocks(m, dy, at, scale);
}
