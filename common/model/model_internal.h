/* What the files of the trunk share among themselves (not an API: the
 * model's interface is model.h). model.c holds the parameters and the
 * model's life; model_acts.c the forward's state (activation arena,
 * position table, masked rows, prompt places); model_block.c the family's
 * pieces and a block's forward and backward side by side; model_forward.c
 * and model_backward.c the passes over the whole trunk. */
#ifndef AIM_MODEL_INTERNAL_H
#define AIM_MODEL_INTERNAL_H

#include <stddef.h>

#include "model.h"
#include "model_tune.h"

/* ---- the forward's state ------------------------------------------------ */

struct aim_model_state {
	int B, rows, cols, K, train, last_run, post_norm;
	int Kp, Np;               /* patch tokens and prompt tokens per sample (K = Kp + Np) */
	size_t N;                 /* B·K tokens */
	size_t cap_N;             /* tokens the arena was sized for */
	int cap_train;
	int pos_rows, pos_cols;
	int *pos_order;           /* [K] the order pos was built in (NULL: raster) */
	float *pos;               /* [K, D] host or backend memory, in sequence order */
	/* masked tokens of the last forward */
	int *masked_rows, *zero_idx; /* [nmasked] rows; [cap_masked] zeros (host) */
	long nmasked, cap_masked;
	const float *mask_token;
	float *mask_token_grad;
	float *tokbuf;            /* [cap_masked, D] backend memory */
	const float *patches;
	aim_mask_kind mask;
	int *prefix;              /* [B] copy */
	int nprefix;
	unsigned char *kept;      /* [depth] outputs valid after the forward */
	/* inference */
	float *cur, *ln, *qkv, *att, *h, *h3, *normed;
	float **out;              /* [depth] */
	/* training */
	float **res, **qkv_l, **att_l, **mid_l, **fc1_l, **fc3_l, **lse_l;
	float **mean1, **rstd1, **mean2, **rstd2;
	float *patch_out, *pmean, *prstd, *post_mean, *post_rstd;
	float *dres, *dmid, *dtmp, *dh1, *dh2, *dh3, *dqkv;
	/* stochastic depth: the branches' factors of the last forward
	 * (backend memory, [depth, 2, B]; has_bscale 0: none), a branch's
	 * gradient */
	float *bscale, *dbr;
	int has_bscale;
	/* adaptation: LoRA's s·x·Aᵀ per (block, target) and its scratch; the
	 * adapter's MLP output and bottleneck per block, scratch; prompts: the
	 * patch tokens' embedding before they join the sequence, and where
	 * each patch token goes in it (host) */
	float **lora_xa;          /* [depth · AIM_LORA_NT] */
	float *lt, *dlt;
	float **mo_l, **hpre_l;
	float *ah, *adz, *dm;
	float *emb;
	int *pidx;
	size_t npidx;
};

static inline int tune_rank(const aim_model *m)
{
	return m->tune && m->tune->cfg.kind == AIM_TUNE_LORA ? m->tune->cfg.rank : 0;
}

static inline int tune_adapter(const aim_model *m)
{
	return m->tune && m->tune->cfg.kind == AIM_TUNE_ADAPTER ? m->tune->cfg.adapter_dim : 0;
}

/* The prompt tokens of block l (NULL: block l keeps what it is given). */
static inline const float *prompt_at(const aim_model *m, int l)
{
	const aim_tune *t = m->tune;
	if (!aim_model_prompt_tokens(m) || (l > 0 && !t->cfg.deep))
		return NULL;
	return t->prompt + (size_t)(t->cfg.deep ? l : 0) * t->cfg.prompts * t->dim;
}

static inline const float *pos_table(const aim_model *m)
{
	return m->cfg.pos == AIM_POS_LEARNED ? m->p.pos_embed : m->st->pos;
}

/* Make m->st on first use. */
int aim_trunk_ensure_state(aim_model *m);
/* Free the activation arena (the next forward plans a new one). */
void aim_trunk_drop_acts(aim_model *m);
/* Size the arena for N tokens in this mode; reuse it when it fits. */
int aim_trunk_alloc_acts(aim_model *m, size_t N, int B, int K, int train, const unsigned char *keep);
/* The position table of a rows × cols grid in this order (NULL: raster). */
int aim_trunk_ensure_pos(aim_model *m, int rows, int cols, const int *order);
/* The masked rows of a forward, kept for its backward. */
int aim_trunk_keep_masked(aim_model *m, const aim_forward_opts *o, size_t N);
/* Where patch token k of sample b goes when prompts come first. */
int aim_trunk_ensure_pidx(aim_model *m, int B, int Kp, int Np);

/* ---- the family's pieces and one block ------------------------------------ */

/* y = N(x) over N rows (LayerNorm or RMSNorm, by the family); y may alias x. */
void aim_trunk_norm_fwd(const aim_model *m, float *y, float *mean, float *rstd, const float *x,
			const float *w, const float *b, int N);
/* dx, dw, db += the norm's gradients (db ignored for RMSNorm). */
void aim_trunk_norm_bwd(const aim_model *m, float *dx, float *dw, float *db, const float *dy,
			const float *x, const float *w, const float *mean, const float *rstd,
			int N);
/* x's masked rows ← the mask token, and its backward. */
void aim_trunk_put_mask_tokens(const aim_model *m, float *x);
void aim_trunk_put_mask_tokens_bwd(aim_model *m, float *dx);

/* Where one block reads and writes. Inference updates x in place
 * (xin = mid = xout) with scratch buffers; training keeps every
 * activation the backward needs. fc1 and h may be the same buffer (the
 * activation in place) when the pre-activation is not kept. */
typedef struct {
	const float *xin;
	float *mid, *xout;
	float *ln, *qkv, *att, *lse;
	float *fc1, *fc3, *h;
	float *mean1, *rstd1, *mean2, *rstd2;
	float *xa[AIM_LORA_NT];   /* LoRA: s·x·Aᵀ per target (kept in training) */
	float *mo, *hpre, *az;    /* adapter: MLP output, bottleneck, scratch */
	/* stochastic depth: per-sample factors of the attention and MLP
	 * branches (backend memory, [nb]; NULL: whole), and a branch's
	 * output before it joins the residual */
	const float *sc_att, *sc_mlp;
	float *branch;
} block_io;

/* One block's forward over nb samples of K tokens, and its backward over
 * the training activations (m->st->dres: dL/d(xout) in, dL/d(xin) out). */
void aim_trunk_block_fwd(const aim_model *m, int l, const block_io *io, int nb, int K,
			 aim_mask_kind mask, const int *prefix);
void aim_trunk_block_bwd(aim_model *m, int l, int B, int K, const int *prefix);

#endif
