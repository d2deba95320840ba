/* The family's pieces (norm, block linears with their LoRA hook, the mask
 * token) and one block's forward and backward, side by side. */

#include "model_internal.h"

/* ---- the family's pieces: norm, block linears, MLP gate ------------------ */

/* y = N(x) over N rows: LayerNorm (mean, rstd kept when not NULL) or
 * RMSNorm (rstd kept; no bias, no mean). y may alias x. */
void aim_trunk_norm_fwd(const aim_model *m, float *y, float *mean, float *rstd, const float *x,
			const float *w, const float *b, int N)
{
	const aim_config *c = &m->cfg;
	if (c->norm == AIM_NORM_RMS)
		m->be->rmsnorm_fwd(y, rstd, x, w, N, c->dim, aim_config_eps(c));
	else
		m->be->layernorm_fwd(y, mean, rstd, x, w, b, N, c->dim, aim_config_eps(c));
}

/* dx, dw, db += the norm's gradients (db ignored for RMSNorm). */
void aim_trunk_norm_bwd(const aim_model *m, float *dx, float *dw, float *db, const float *dy,
			const float *x, const float *w, const float *mean, const float *rstd,
			int N)
{
	if (m->cfg.norm == AIM_NORM_RMS)
		m->be->rmsnorm_bwd(dx, dw, dy, x, w, rstd, N, m->cfg.dim);
	else
		m->be->layernorm_bwd(dx, dw, db, dy, x, w, mean, rstd, N, m->cfg.dim);
}

/* The linear layers of a block, by role. Every linear of the trunk runs
 * through these two functions (forward and backward), so an adapter has
 * one place to hook. */
typedef enum { LIN_QKV, LIN_PROJ, LIN_FC1, LIN_FC2, LIN_FC3 } block_lin;

static void lin_params(const aim_block_params *p, block_lin which, float **w, float **b)
{
	switch (which) {
	case LIN_QKV: *w = p->qkv_w; *b = p->qkv_b; break;
	case LIN_PROJ: *w = p->proj_w; *b = p->proj_b; break;
	case LIN_FC1: *w = p->fc1_w; *b = p->fc1_b; break;
	case LIN_FC2: *w = p->fc2_w; *b = p->fc2_b; break;
	default: *w = p->fc3_w; *b = p->fc3_b; break;
	}
}

/* Block l's LoRA pair on this layer (NULL: none). The roles are the LoRA
 * targets, in the same order (model_tune.h). */
static const aim_lora_pair *lora_at(const aim_model *m, int l, block_lin which)
{
	const aim_tune *t = m->tune;
	if (!t || (int)which >= AIM_LORA_NT || !(aim_lora_mask(&t->cfg, l) & (1u << which)))
		return NULL;
	return &t->lora[l][which];
}

/* y[N, out] (=, or += when acc) x[N, in] · Wᵀ + b of block l's layer, plus
 * its LoRA update (keeping s·x·Aᵀ in xa). */
static void block_linear(const aim_model *m, int l, block_lin which, float *y, const float *x,
			 int N, int in, int out, int acc, float *xa)
{
	float *w, *b;
	lin_params(&m->p.blocks[l], which, &w, &b);
	if (acc)
		m->be->linear_fwd_acc(y, x, w, b, N, in, out);
	else
		m->be->linear_fwd(y, x, w, b, N, in, out);
	const aim_lora_pair *lp = lora_at(m, l, which);
	if (lp)
		aim_lora_fwd(m->be, lp, (float)aim_lora_scale(m->tune), y, x, xa, N, in, out,
			     m->tune->cfg.rank);
}

/* dx += dy·W ; the layer's dW, db += ... (not when the trunk is frozen);
 * the LoRA pair's gradients and its share of dx. */
static void block_linear_bwd(aim_model *m, int l, block_lin which, float *dx, const float *dy,
			     const float *x, int N, int in, int out)
{
	float *w, *b, *dw, *db;
	lin_params(&m->p.blocks[l], which, &w, &b);
	lin_params(&m->g.blocks[l], which, &dw, &db);
	if (m->frozen)
		dw = db = NULL;
	m->be->linear_bwd(dx, dw, db, dy, x, w, N, in, out);
	const aim_lora_pair *lp = lora_at(m, l, which);
	if (lp)
		aim_lora_bwd(m->be, lp, &m->tune->glora[l][which], (float)aim_lora_scale(m->tune), dx,
			     dy, x, m->st->lora_xa[l * AIM_LORA_NT + which], m->st->dlt, N, in, out,
			     m->tune->cfg.rank);
}

/* x's masked rows ← the mask token: copies of it (a gather of its one
 * row), scattered onto those rows. */
void aim_trunk_put_mask_tokens(const aim_model *m, float *x)
{
	struct aim_model_state *s = m->st;
	m->be->gather_rows(s->tokbuf, s->mask_token, s->zero_idx, s->nmasked, m->cfg.dim);
	m->be->scatter_rows(x, s->tokbuf, s->masked_rows, s->nmasked, m->cfg.dim);
}

/* Its backward: the masked rows' gradient summed into the token's, and
 * none of it reaches the patch embedding those rows no longer carry. */
void aim_trunk_put_mask_tokens_bwd(aim_model *m, float *dx)
{
	struct aim_model_state *s = m->st;
	const int D = m->cfg.dim;
	m->be->gather_rows(s->tokbuf, dx, s->masked_rows, s->nmasked, D);
	if (s->mask_token_grad)
		m->be->linear_bwd(NULL, NULL, s->mask_token_grad, s->tokbuf, NULL, NULL,
				  (int)s->nmasked, 1, D);
	m->be->zero(s->tokbuf, sizeof(float) * s->nmasked * D);
	m->be->scatter_rows(dx, s->tokbuf, s->masked_rows, s->nmasked, D);
}

/* ---- one block ---------------------------------------------------------- */

/*   mid  = xin + proj(attn(qkv(N₁ xin)))
 *   xout = mid + fc2(MLP(N₂ mid)) — the residual adds ride on the GEMMs,
 * except under stochastic depth: there each branch is computed apart and
 * joins the residual scaled per sample (0: dropped; 1/keep: kept), as
 * timm's DropPath(x) = x·bernoulli(keep)/keep on the branch. */
void aim_trunk_block_fwd(const aim_model *m, int l, const block_io *io, int nb, int K,
			 aim_mask_kind mask, const int *prefix)
{
	const aim_backend *be = m->be;
	const aim_config *c = &m->cfg;
	const aim_block_params *bp = &m->p.blocks[l];
	int N = nb * K, D = c->dim, Hm = c->mlp_hidden, H = c->heads;
	aim_trunk_norm_fwd(m, io->ln, io->mean1, io->rstd1, io->xin, bp->ln1_w, bp->ln1_b, N);
	block_linear(m, l, LIN_QKV, io->qkv, io->ln, N, D, 3 * D, 0, io->xa[LIN_QKV]);
	be->attention_fwd(io->att, io->lse, io->qkv, nb, K, H, D / H, mask, prefix);
	if (io->sc_att) {
		block_linear(m, l, LIN_PROJ, io->branch, io->att, N, D, D, 0, io->xa[LIN_PROJ]);
		be->add_scaled_rows(io->mid, io->xin, io->sc_att, io->branch, nb, (size_t)K * D);
	} else {
		if (io->mid != io->xin)
			be->copy(io->mid, io->xin, (size_t)N * D * sizeof(float));
		block_linear(m, l, LIN_PROJ, io->mid, io->att, N, D, D, 1, io->xa[LIN_PROJ]);
	}
	aim_trunk_norm_fwd(m, io->ln, io->mean2, io->rstd2, io->mid, bp->ln2_w, bp->ln2_b, N);
	/* Inference keeps no pre-activation (fc1 is h): the backend may apply
	 * the GELU inside the product, unless a LoRA update joins it first. */
	int fused_gelu = c->mlp == AIM_MLP_GELU && io->fc1 == io->h && !lora_at(m, l, LIN_FC1);
	if (fused_gelu) {
		be->linear_gelu_fwd(io->h, io->ln, bp->fc1_w, bp->fc1_b, N, D, Hm);
	} else {
		block_linear(m, l, LIN_FC1, io->fc1, io->ln, N, D, Hm, 0, io->xa[LIN_FC1]);
		if (c->mlp == AIM_MLP_SWIGLU) {
			block_linear(m, l, LIN_FC3, io->fc3, io->ln, N, D, Hm, 0, io->xa[LIN_FC3]);
			be->swiglu_fwd(io->h, io->fc1, io->fc3, (size_t)N * Hm);
		} else {
			be->gelu_fwd(io->h, io->fc1, (size_t)N * Hm);
		}
	}
	if (io->sc_mlp) { /* (not with adapters: the forward refuses them) */
		block_linear(m, l, LIN_FC2, io->branch, io->h, N, Hm, D, 0, io->xa[LIN_FC2]);
		be->add_scaled_rows(io->xout, io->mid, io->sc_mlp, io->branch, nb, (size_t)K * D);
		return;
	}
	if (io->xout != io->mid)
		be->copy(io->xout, io->mid, (size_t)N * D * sizeof(float));
	int a = tune_adapter(m);
	if (a) { /* the MLP's output through the adapter, then the residual add */
		block_linear(m, l, LIN_FC2, io->mo, io->h, N, Hm, D, 0, NULL);
		aim_adapter_fwd(be, &m->tune->adp[l], io->xout, io->mo, io->hpre, io->az, N, D, a);
	} else {
		block_linear(m, l, LIN_FC2, io->xout, io->h, N, Hm, D, 1, io->xa[LIN_FC2]);
	}
}

/* dres holds dL/d(xout) of block l on entry, dL/d(xin) on return. The
 * norms' and the MLP's inputs are recomputed from the kept ones. */
void aim_trunk_block_bwd(aim_model *m, int l, int B, int K, const int *prefix)
{
	struct aim_model_state *s = m->st;
	const aim_backend *be = m->be;
	const aim_config *c = &m->cfg;
	const aim_block_params *bp = &m->p.blocks[l];
	aim_block_params *bg = &m->g.blocks[l];
	int D = c->dim, Hm = c->mlp_hidden, H = c->heads, N = B * K;
	size_t ND = (size_t)N * D, NH = (size_t)N * Hm;
	float *mid = s->mid_l[l], *xin = s->res[l], *dres = s->dres;
	/* a frozen trunk: the norms' weight gradients are not wanted either */
	float *g_ln1_w = m->frozen ? NULL : bg->ln1_w, *g_ln1_b = m->frozen ? NULL : bg->ln1_b;
	float *g_ln2_w = m->frozen ? NULL : bg->ln2_w, *g_ln2_b = m->frozen ? NULL : bg->ln2_b;
	/* MLP branch: out = mid + fc2(MLP(N2(mid))), through the adapter on the
	 * MLP's output when there is one */
	const float *dmlp = dres;
	const float *sc_att = s->has_bscale ? s->bscale + (size_t)l * 2 * B : NULL;
	int a = tune_adapter(m);
	if (s->has_bscale) { /* the MLP branch's share: its factor times dres */
		be->add_scaled_rows(s->dbr, NULL, sc_att + B, dres, B, (size_t)K * D);
		dmlp = s->dbr;
	} else if (a) {
		aim_adapter_bwd(be, &m->tune->adp[l], &m->tune->gadp[l], s->dm, dres, s->mo_l[l],
				s->hpre_l[l], s->ah, s->adz, N, D, a);
		dmlp = s->dm;
	}
	be->copy(s->dmid, dres, ND * sizeof(float));
	aim_trunk_norm_fwd(m, s->ln, NULL, NULL, mid, bp->ln2_w, bp->ln2_b, N);
	int glu = c->mlp == AIM_MLP_SWIGLU;
	if (glu)
		be->swiglu_fwd(s->h, s->fc1_l[l], s->fc3_l[l], NH);
	else
		be->gelu_fwd(s->h, s->fc1_l[l], NH);
	be->zero(s->dh1, NH * sizeof(float));
	block_linear_bwd(m, l, LIN_FC2, s->dh1, dmlp, s->h, N, Hm, D);
	be->zero(s->dh2, NH * sizeof(float));
	be->zero(s->dtmp, ND * sizeof(float));
	if (glu) {
		be->zero(s->dh3, NH * sizeof(float));
		be->swiglu_bwd(s->dh2, s->dh3, s->dh1, s->fc1_l[l], s->fc3_l[l], NH);
		block_linear_bwd(m, l, LIN_FC3, s->dtmp, s->dh3, s->ln, N, D, Hm);
	} else {
		be->gelu_bwd(s->dh2, s->dh1, s->fc1_l[l], NH);
	}
	block_linear_bwd(m, l, LIN_FC1, s->dtmp, s->dh2, s->ln, N, D, Hm);
	aim_trunk_norm_bwd(m, s->dmid, g_ln2_w, g_ln2_b, s->dtmp, mid, bp->ln2_w, s->mean2[l],
			   s->rstd2[l], N);
	/* attention branch: mid = x + proj(attn(qkv(N1(x)))) */
	be->zero(s->dtmp, ND * sizeof(float));
	const float *datt = s->dmid;
	if (sc_att) { /* the attention branch's share of dmid */
		be->add_scaled_rows(s->dbr, NULL, sc_att, s->dmid, B, (size_t)K * D);
		datt = s->dbr;
	}
	block_linear_bwd(m, l, LIN_PROJ, s->dtmp, datt, s->att_l[l], N, D, D);
	be->zero(s->dqkv, ND * 3 * sizeof(float));
	be->attention_bwd(s->dqkv, s->dtmp, s->qkv_l[l], s->att_l[l], s->lse_l[l], B, K, H, D / H,
			  s->mask, prefix);
	aim_trunk_norm_fwd(m, s->ln, NULL, NULL, xin, bp->ln1_w, bp->ln1_b, N);
	be->zero(s->dtmp, ND * sizeof(float));
	block_linear_bwd(m, l, LIN_QKV, s->dtmp, s->dqkv, s->ln, N, D, 3 * D);
	be->copy(dres, s->dmid, ND * sizeof(float));
	aim_trunk_norm_bwd(m, dres, g_ln1_w, g_ln1_b, s->dtmp, xin, bp->ln1_w, s->mean1[l],
			   s->rstd1[l], N);
}
