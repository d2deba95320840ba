/* The forward's state: the activation arena (a sizes table, one
 * allocation, reused while it fits), the position table, the masked rows
 * and where patch tokens go behind prompts. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model_internal.h"

/* Sizes table for the activation arena: each entry a pointer to fill and a
 * float count. */
typedef struct {
	float **slot;
	size_t n;
} act_entry;

static int plan_acts(aim_model *m, size_t N, int B, int K, int train, const unsigned char *keep,
		     act_entry *e, int cap)
{
	struct aim_model_state *s = m->st;
	const aim_config *c = &m->cfg;
	size_t D = c->dim, Hm = c->mlp_hidden;
	size_t Hm3 = c->mlp == AIM_MLP_SWIGLU ? Hm : 0; /* the fc3 branch */
	size_t r = tune_rank(m), a = tune_adapter(m);
	int n = 0;
#define ACT(ptr, count) do { if (n < cap) { e[n].slot = &(ptr); e[n].n = (count); } n++; } while (0)
	if (r) {
		ACT(s->lt, N * r);
		ACT(s->dlt, N * r);
	}
	if (a) {
		ACT(s->ah, N * a);
		ACT(s->adz, N * a);
		ACT(s->dm, N * D);
	}
	if (aim_model_prompt_tokens(m))
		ACT(s->emb, N * D);
	ACT(s->cur, N * D);
	ACT(s->ln, N * D);
	ACT(s->qkv, N * 3 * D);
	ACT(s->att, N * D);
	ACT(s->h, N * Hm);
	ACT(s->h3, N * Hm3);
	ACT(s->normed, N * D);
	if (!train) {
		for (int l = 0; l < c->depth; l++)
			if (keep[l])
				ACT(s->out[l], N * D);
	} else {
		for (int l = 0; l <= c->depth; l++)
			ACT(s->res[l], N * D);
		for (int l = 0; l < c->depth; l++) {
			ACT(s->qkv_l[l], N * 3 * D);
			ACT(s->att_l[l], N * D);
			ACT(s->mid_l[l], N * D);
			ACT(s->fc1_l[l], N * Hm);
			ACT(s->fc3_l[l], N * Hm3);
			ACT(s->lse_l[l], (size_t)B * c->heads * K);
			ACT(s->mean1[l], N);
			ACT(s->rstd1[l], N);
			ACT(s->mean2[l], N);
			ACT(s->rstd2[l], N);
			for (int k = 0; k < AIM_LORA_NT; k++)
				if (r && (aim_lora_mask(&m->tune->cfg, l) & (1u << k)))
					ACT(s->lora_xa[l * AIM_LORA_NT + k], N * r);
			if (a) {
				ACT(s->mo_l[l], N * D);
				ACT(s->hpre_l[l], N * a);
			}
		}
		ACT(s->patch_out, N * D);
		ACT(s->pmean, N);
		ACT(s->prstd, N);
		ACT(s->post_mean, N);
		ACT(s->post_rstd, N);
		ACT(s->dres, N * D);
		ACT(s->dmid, N * D);
		ACT(s->dtmp, N * D);
		ACT(s->dh1, N * Hm);
		ACT(s->dh2, N * Hm);
		ACT(s->dh3, N * Hm3);
		ACT(s->dqkv, N * 3 * D);
		ACT(s->bscale, 2 * (size_t)c->depth * N); /* B <= N */
		ACT(s->dbr, N * D);
	}
#undef ACT
	return n;
}

int aim_trunk_ensure_state(aim_model *m)
{
	if (m->st)
		return AIM_OK;
	int depth = m->cfg.depth;
	struct aim_model_state *s = calloc(1, sizeof *s);
	if (!s)
		return aim_error("out of memory");
	m->st = s;
	s->kept = calloc(depth, 1);
	s->out = calloc(depth, sizeof(float *));
	s->res = calloc(depth + 1, sizeof(float *));
	float ***lists[] = {&s->qkv_l, &s->att_l, &s->mid_l, &s->fc1_l, &s->fc3_l, &s->lse_l,
			    &s->mean1, &s->rstd1, &s->mean2, &s->rstd2, &s->mo_l, &s->hpre_l};
	s->lora_xa = calloc((size_t)depth * AIM_LORA_NT, sizeof(float *));
	int ok = s->kept && s->out && s->res && s->lora_xa;
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
		ok = ok && (*lists[i] = calloc(depth, sizeof(float *)));
	return ok ? AIM_OK : aim_error("out of memory");
}

void aim_trunk_drop_acts(aim_model *m)
{
	struct aim_model_state *s = m->st;
	if (m->acts)
		m->be->free(m->acts);
	m->acts = NULL;
	m->acts_bytes = 0;
	memset(s->out, 0, m->cfg.depth * sizeof(float *));
	s->cap_N = 0;
}

/* Size the arena for N tokens in this mode; reuse it when it fits. */
int aim_trunk_alloc_acts(aim_model *m, size_t N, int B, int K, int train, const unsigned char *keep)
{
	struct aim_model_state *s = m->st;
	int depth = m->cfg.depth;
	int cap = 30 + (13 + AIM_LORA_NT) * (depth + 1);
	act_entry *e = malloc(cap * sizeof *e);
	if (!e)
		return aim_error("out of memory");
	/* Reuse only when the same plan fits: same mode, same kept outputs,
	 * enough tokens (lse rows scale with B·K = N as well). */
	int same = m->acts && s->cap_train == train && N <= s->cap_N;
	for (int l = 0; same && !train && l < depth; l++)
		same = (s->out[l] != NULL) == (keep[l] != 0);
	if (same) {
		free(e);
		return AIM_OK;
	}
	aim_trunk_drop_acts(m);
	size_t capN = N;
	int n = plan_acts(m, capN, B, K, train, keep, e, cap);
	if (n > cap) { /* the table above grew past cap: a programming error */
		free(e);
		return aim_error("activation plan of %d entries exceeds %d", n, cap);
	}
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += (e[i].n + 15) & ~(size_t)15;
	char *a = m->be->alloc(total * sizeof(float));
	if (!a) {
		free(e);
		return aim_error("out of memory for activations (%zu MB)", total * 4 >> 20);
	}
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		*e[i].slot = (float *)a + off;
		off += (e[i].n + 15) & ~(size_t)15;
	}
	free(e);
	m->acts = a;
	m->acts_bytes = total * sizeof(float);
	s->cap_N = capN;
	s->cap_train = train;
	return AIM_OK;
}

/* The position table of a rows × cols grid: the sin-cos one (built once
 * per grid and order: token t gets the row of its place order[t], the
 * table as it is for raster), or the learned parameter, which exists for
 * the training grid only, in raster order. */
int aim_trunk_ensure_pos(aim_model *m, int rows, int cols, const int *order)
{
	struct aim_model_state *s = m->st;
	const aim_config *c = &m->cfg;
	const int K = rows * cols, D = c->dim;
	if (c->pos == AIM_POS_LEARNED) {
		if (rows != c->grid_rows || cols != c->grid_cols)
			return aim_error("the model's learned position table is for a %dx%d grid of "
					 "patches (%dx%d px); got %dx%d", c->grid_rows, c->grid_cols,
					 c->grid_rows * c->patch, c->grid_cols * c->patch, rows, cols);
		for (int t = 0; order && t < K; t++)
			if (order[t] != t)
				return aim_error("an order other than raster needs sin-cos positions "
						 "(this model has a learned table)");
		return AIM_OK;
	}
	if (s->pos && s->pos_rows == rows && s->pos_cols == cols &&
	    (order ? s->pos_order && !memcmp(s->pos_order, order, sizeof(int) * K) : !s->pos_order))
		return AIM_OK;
	size_t n = (size_t)K * D;
	float *host = malloc(n * sizeof(float));
	if (!host)
		return aim_error("out of memory");
	aim_sincos_pos_2d(host, rows, cols, D);
	free(s->pos_order);
	s->pos_order = NULL;
	if (order) {
		float *seq = malloc(n * sizeof(float));
		s->pos_order = malloc(sizeof(int) * K);
		if (!seq || !s->pos_order) {
			free(seq);
			free(host);
			return aim_error("out of memory");
		}
		for (int t = 0; t < K; t++) {
			if (order[t] < 0 || order[t] >= K) {
				free(seq);
				free(host);
				return aim_error("internal: order[%d] = %d is not a place of %d", t,
						 order[t], K);
			}
			memcpy(seq + (size_t)t * D, host + (size_t)order[t] * D, sizeof(float) * D);
		}
		memcpy(s->pos_order, order, sizeof(int) * K);
		free(host);
		host = seq;
	}
	if (s->pos)
		m->be->free(s->pos);
	s->pos = m->be->alloc(n * sizeof(float));
	if (!s->pos) {
		free(host);
		return aim_error("out of memory");
	}
	m->be->upload(s->pos, host, n * sizeof(float));
	free(host);
	s->pos_rows = rows;
	s->pos_cols = cols;
	return AIM_OK;
}

/* The masked rows of a forward, kept (host) for its backward, and scratch
 * for one D-row per masked token. */
int aim_trunk_keep_masked(aim_model *m, const aim_forward_opts *o, size_t N)
{
	struct aim_model_state *s = m->st;
	s->nmasked = o->mask_token ? o->nmasked : 0;
	s->mask_token = o->mask_token;
	s->mask_token_grad = o->train ? o->mask_token_grad : NULL;
	if (!s->nmasked)
		return AIM_OK;
	if (s->nmasked > s->cap_masked) {
		free(s->masked_rows);
		free(s->zero_idx);
		if (s->tokbuf)
			m->be->free(s->tokbuf);
		s->cap_masked = s->nmasked;
		s->masked_rows = malloc(sizeof(int) * s->nmasked);
		s->zero_idx = calloc(s->nmasked, sizeof(int));
		s->tokbuf = m->be->alloc(sizeof(float) * s->nmasked * m->cfg.dim);
		if (!s->masked_rows || !s->zero_idx || !s->tokbuf) {
			s->cap_masked = s->nmasked = 0;
			return aim_error("out of memory for %ld masked tokens", o->nmasked);
		}
	}
	for (long i = 0; i < s->nmasked; i++) {
		if (o->masked_rows[i] < 0 || (size_t)o->masked_rows[i] >= N)
			return aim_error("internal: masked row %d outside %zu tokens",
					 o->masked_rows[i], N);
		s->masked_rows[i] = o->masked_rows[i];
	}
	return AIM_OK;
}

/* Where patch token k of sample b goes when prompts come first. */
int aim_trunk_ensure_pidx(aim_model *m, int B, int Kp, int Np)
{
	struct aim_model_state *s = m->st;
	size_t n = (size_t)B * Kp;
	if (n > s->npidx) {
		free(s->pidx);
		s->npidx = 0;
		if (!(s->pidx = malloc(n * sizeof(int))))
			return aim_error("out of memory");
		s->npidx = n;
	}
	for (int b = 0; b < B; b++)
		for (int k = 0; k < Kp; k++)
			s->pidx[(size_t)b * Kp + k] = b * (Kp + Np) + Np + k;
	return AIM_OK;
}
