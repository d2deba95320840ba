/* The AIM trunk of both families: parameters, forward, backward (see
 * model.h). The family is data (aim_config's norm, mlp, pos): one code
 * path, with the norm, the MLP and the positions each chosen in one
 * helper. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"
#include "model_internal.h"
#include "model_tune.h"

/* ---- parameters: a sizes table, one arena ------------------------------ */

static int add_param(aim_model *m, int cap, const char *name, float **slot, float **gslot,
		     int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
	if (m->nparams >= cap)
		return aim_error("internal: parameter table full");
	aim_param_info *p = &m->info[m->nparams++];
	snprintf(p->name, sizeof p->name, "%s", name);
	p->ndim = ndim;
	int64_t s[4] = {a, b, c, d};
	p->numel = 1;
	for (int i = 0; i < ndim; i++) {
		p->shape[i] = s[i];
		p->numel *= (size_t)s[i];
	}
	p->offset = m->arena_floats;
	m->arena_floats += (p->numel + 15) & ~(size_t)15; /* 64-byte aligned tensors */
	p->slot = slot;
	p->grad_slot = gslot;
	return AIM_OK;
}

#define P1(nm, field, n) add_param(m, cap, nm, &m->p.field, &m->g.field, 1, n, 0, 0, 0)
#define P2(nm, field, r, c) add_param(m, cap, nm, &m->p.field, &m->g.field, 2, r, c, 0, 0)

/* The table, in arena order: patch embedding, blocks, post-trunk norm. */
static int build_param_table(aim_model *m)
{
	const aim_config *c = &m->cfg;
	int D = c->dim, Hm = c->mlp_hidden;
	int cap = 8 + 20 * c->depth, ln = c->norm == AIM_NORM_LAYER;
	m->info = calloc(cap, sizeof *m->info);
	m->p.blocks = calloc(c->depth, sizeof *m->p.blocks);
	m->g.blocks = calloc(c->depth, sizeof *m->g.blocks);
	if (!m->info || !m->p.blocks || !m->g.blocks)
		return aim_error("out of memory for the parameter table");
	int rc = add_param(m, cap, "preprocessor.patchifier.proj.weight", &m->p.patch_w,
			   &m->g.patch_w, 4, D, c->channels, c->patch, c->patch);
	rc |= P1("preprocessor.patchifier.proj.bias", patch_b, D);
	rc |= P1("preprocessor.patchifier.norm.weight", patch_ln_w, D);
	if (ln)
		rc |= P1("preprocessor.patchifier.norm.bias", patch_ln_b, D);
	if (c->pos == AIM_POS_LEARNED)
		rc |= add_param(m, cap, "preprocessor.pos_embed", &m->p.pos_embed, &m->g.pos_embed, 3,
				1, (int64_t)c->grid_rows * c->grid_cols, D, 0);
	for (int i = 0; i < c->depth && rc == 0; i++) {
		aim_block_params *bp = &m->p.blocks[i], *bg = &m->g.blocks[i];
		char n[64];
#define B1(suffix, field, len) (snprintf(n, sizeof n, "trunk.blocks.%d.%s", i, suffix), \
	add_param(m, cap, n, &bp->field, &bg->field, 1, len, 0, 0, 0))
#define B2(suffix, field, r, cc) (snprintf(n, sizeof n, "trunk.blocks.%d.%s", i, suffix), \
	add_param(m, cap, n, &bp->field, &bg->field, 2, r, cc, 0, 0))
		rc |= B1("norm_1.weight", ln1_w, D);
		if (ln)
			rc |= B1("norm_1.bias", ln1_b, D);
		rc |= B2("attn.qkv.weight", qkv_w, 3 * D, D);
		if (c->qkv_bias)
			rc |= B1("attn.qkv.bias", qkv_b, 3 * D);
		rc |= B2("attn.proj.weight", proj_w, D, D);
		if (c->proj_bias)
			rc |= B1("attn.proj.bias", proj_b, D);
		rc |= B1("norm_2.weight", ln2_w, D);
		if (ln)
			rc |= B1("norm_2.bias", ln2_b, D);
		rc |= B2("mlp.fc1.weight", fc1_w, Hm, D);
		if (c->mlp_bias)
			rc |= B1("mlp.fc1.bias", fc1_b, Hm);
		rc |= B2("mlp.fc2.weight", fc2_w, D, Hm);
		if (c->mlp_bias)
			rc |= B1("mlp.fc2.bias", fc2_b, D);
		if (c->mlp == AIM_MLP_SWIGLU) {
			rc |= B2("mlp.fc3.weight", fc3_w, Hm, D);
			if (c->mlp_bias)
				rc |= B1("mlp.fc3.bias", fc3_b, Hm);
		}
#undef B1
#undef B2
	}
	rc |= P1("trunk.post_trunk_norm.weight", post_w, D);
	if (ln)
		rc |= P1("trunk.post_trunk_norm.bias", post_b, D);
	return rc ? AIM_ERR : AIM_OK;
}

int aim_model_create(aim_model **out, const aim_config *c, const aim_backend *be)
{
	*out = NULL;
	if (aim_config_check(c) < 0)
		return AIM_ERR;
	aim_model *m = calloc(1, sizeof *m);
	if (!m)
		return aim_error("out of memory");
	m->cfg = *c;
	m->be = be ? be : aim_backend_cpu();
	aim_record_init(&m->head);
	if (build_param_table(m) < 0) {
		aim_model_free(m);
		return AIM_ERR;
	}
	*out = m;
	return AIM_OK;
}

int aim_model_alloc_params(aim_model *m)
{
	if (m->arena)
		return AIM_OK;
	float *a = m->be->alloc(m->arena_floats * sizeof(float));
	if (!a)
		return aim_error("out of memory for %zu parameters", m->arena_floats);
	for (int i = 0; i < m->nparams; i++) {
		aim_param_info *p = &m->info[i];
		if (*p->slot)
			m->be->upload(a + p->offset, *p->slot, p->numel * sizeof(float));
		*p->slot = a + p->offset;
	}
	m->arena = a;
	return AIM_OK;
}

int aim_model_alloc_grads(aim_model *m)
{
	if (!m->grad_arena) {
		m->grad_arena = m->be->alloc(m->arena_floats * sizeof(float));
		if (!m->grad_arena)
			return aim_error("out of memory for %zu gradients", m->arena_floats);
		for (int i = 0; i < m->nparams; i++)
			*m->info[i].grad_slot = m->grad_arena + m->info[i].offset;
	}
	aim_model_zero_grads(m);
	return AIM_OK;
}

void aim_model_zero_grads(aim_model *m)
{
	if (m->grad_arena)
		m->be->zero(m->grad_arena, m->arena_floats * sizeof(float));
}

const aim_param_info *aim_model_param(const aim_model *m, const char *name)
{
	for (int i = 0; i < m->nparams; i++)
		if (strcmp(m->info[i].name, name) == 0)
			return &m->info[i];
	return NULL;
}

/* splitmix64: a small, well-mixed generator for reproducible init. */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int aim_model_init_params(aim_model *m, uint64_t seed)
{
	if (aim_model_alloc_params(m) < 0)
		return AIM_ERR;
	/* Drawn on the host (the same numbers on every backend), then uploaded. */
	float *host = m->be->host_memory ? m->arena : calloc(m->arena_floats, sizeof(float));
	if (!host)
		return aim_error("out of memory");
	uint64_t s = seed;
	for (int i = 0; i < m->nparams; i++) {
		aim_param_info *p = &m->info[i];
		float *w = host + p->offset;
		const char *suffix = strrchr(p->name, '.');
		int is_norm = strstr(p->name, "norm") != NULL;
		if (p->slot == &m->p.pos_embed) {
			/* normal, std 0.02 (Box–Muller over two uniforms) */
			for (size_t j = 0; j < p->numel; j++) {
				double u1 = ((double)(mix(&s) >> 11) + 1) / 9007199254740993.0;
				double u2 = (double)(mix(&s) >> 11) / 9007199254740992.0;
				w[j] = (float)(0.02 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
			}
		} else if (p->ndim >= 2) {
			/* Xavier-uniform over the matrix [out, in] (the patch
			 * kernel flattened to [D, C·p·p], as MAE and AIM do). */
			double fan_out = (double)p->shape[0], fan_in = (double)p->numel / fan_out;
			double a = sqrt(6.0 / (fan_in + fan_out));
			for (size_t j = 0; j < p->numel; j++)
				w[j] = (float)(((double)(mix(&s) >> 11) / 9007199254740992.0 * 2 - 1) * a);
		} else {
			float v = is_norm && strcmp(suffix, ".weight") == 0 ? 1.0f : 0.0f;
			for (size_t j = 0; j < p->numel; j++)
				w[j] = v;
		}
	}
	if (!m->be->host_memory) {
		m->be->upload(m->arena, host, m->arena_floats * sizeof(float));
		free(host);
	}
	return AIM_OK;
}

/* ---- activations -------------------------------------------------------- */

int aim_model_prompt_tokens(const aim_model *m)
{
	return m->tune && m->tune->cfg.kind == AIM_TUNE_PROMPT ? m->tune->cfg.prompts : 0;
}

static float *prompt_grad_at(const aim_model *m, int l)
{
	const aim_tune *t = m->tune;
	if (!prompt_at(m, l) || !t->gprompt)
		return NULL;
	return t->gprompt + (size_t)(t->cfg.deep ? l : 0) * t->cfg.prompts * t->dim;
}

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
	int cap = 26 + (13 + AIM_LORA_NT) * (depth + 1);
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

/* Block l's LoRA pair on this layer (NULL: none). The four LoRA targets
 * are the first four roles. */
static const aim_lora_pair *lora_at(const aim_model *m, int l, block_lin which)
{
	const aim_tune *t = m->tune;
	if (!t || which > LIN_FC2 || !(aim_lora_mask(&t->cfg, l) & (1u << which)))
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

/* ---- forward ------------------------------------------------------------ */

/*   mid  = xin + proj(attn(qkv(N₁ xin)))
 *   xout = mid + fc2(MLP(N₂ mid)) — the residual adds ride on the GEMMs. */
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
	if (io->mid != io->xin)
		be->copy(io->mid, io->xin, (size_t)N * D * sizeof(float));
	block_linear(m, l, LIN_PROJ, io->mid, io->att, N, D, D, 1, io->xa[LIN_PROJ]);
	aim_trunk_norm_fwd(m, io->ln, io->mean2, io->rstd2, io->mid, bp->ln2_w, bp->ln2_b, N);
	block_linear(m, l, LIN_FC1, io->fc1, io->ln, N, D, Hm, 0, io->xa[LIN_FC1]);
	if (c->mlp == AIM_MLP_SWIGLU) {
		block_linear(m, l, LIN_FC3, io->fc3, io->ln, N, D, Hm, 0, NULL);
		be->swiglu_fwd(io->h, io->fc1, io->fc3, (size_t)N * Hm);
	} else {
		be->gelu_fwd(io->h, io->fc1, (size_t)N * Hm);
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
		.xa = {lt, lt, lt, lt},
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
	embed(m, s->res[0], patches, 0, B, s->patch_out, s->pmean, s->prstd);
	for (int l = 0; l <= last; l++) {
		float **xa = s->lora_xa + (size_t)l * AIM_LORA_NT;
		block_io io = {
			.xin = s->res[l], .mid = s->mid_l[l], .xout = s->res[l + 1],
			.ln = s->ln, .qkv = s->qkv_l[l], .att = s->att_l[l], .lse = s->lse_l[l],
			.fc1 = s->fc1_l[l], .fc3 = s->fc3_l[l], .h = s->h,
			.mean1 = s->mean1[l], .rstd1 = s->rstd1[l],
			.mean2 = s->mean2[l], .rstd2 = s->rstd2[l],
			.xa = {xa[0], xa[1], xa[2], xa[3]},
			.mo = s->mo_l[l], .hpre = s->hpre_l[l], .az = s->ah,
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

/* ---- backward ----------------------------------------------------------- */

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
	int a = tune_adapter(m);
	if (a) {
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
	block_linear_bwd(m, l, LIN_PROJ, s->dtmp, s->dmid, s->att_l[l], N, D, D);
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

int aim_model_set_tune(aim_model *m, struct aim_tune *t, int frozen)
{
	if (t && (t->depth != m->cfg.depth || t->dim != m->cfg.dim ||
		  t->mlp_hidden != m->cfg.mlp_hidden))
		return aim_error("adaptation made for another trunk shape");
	if (m->tune && m->tune != t)
		aim_tune_free(m->tune);
	m->tune = t;
	m->frozen = frozen;
	if (m->st)
		aim_trunk_drop_acts(m); /* the activation plan depends on the adaptation */
	return AIM_OK;
}

/* ---- misc --------------------------------------------------------------- */

double aim_model_flops(const aim_config *c, int rows, int cols)
{
	double K = (double)rows * cols, D = c->dim, Hm = c->mlp_hidden;
	double P = (double)c->channels * c->patch * c->patch;
	double mlp_mats = c->mlp == AIM_MLP_SWIGLU ? 3 : 2; /* fc1, fc2 (, fc3) */
	double per_block = 2 * K * D * (3 * D + D + mlp_mats * Hm) + 4 * K * K * D;
	return 2 * K * P * D + c->depth * per_block;
}

void aim_model_free(aim_model *m)
{
	if (!m)
		return;
	struct aim_model_state *s = m->st;
	if (s) {
		if (m->acts)
			m->be->free(m->acts);
		if (s->pos)
			m->be->free(s->pos);
		if (s->tokbuf)
			m->be->free(s->tokbuf);
		free(s->pos_order);
		free(s->masked_rows);
		free(s->zero_idx);
		free(s->prefix);
		free(s->pidx);
		free(s->kept);
		free(s->out);
		free(s->res);
		float **lists[] = {s->qkv_l, s->att_l, s->mid_l, s->fc1_l, s->fc3_l, s->lse_l,
				   s->mean1, s->rstd1, s->mean2, s->rstd2, s->mo_l, s->hpre_l,
				   s->lora_xa};
		for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
			free(lists[i]);
		free(s);
	}
	aim_tune_free(m->tune);
	if (m->arena)
		m->be->free(m->arena);
	if (m->grad_arena)
		m->be->free(m->grad_arena);
	if (m->mapping && m->mapping_free)
		m->mapping_free(m->mapping);
	aim_record_free(&m->head);
	free(m->info);
	free(m->p.blocks);
	free(m->g.blocks);
	free(m->source);
	free(m);
}
