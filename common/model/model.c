/* The AIM trunk of both families (see model.h): its parameters, its
 * adaptation and its life. The family is data (aim_config's norm, mlp,
 * pos): one code path, with the norm, the MLP and the positions each
 * chosen in one helper (model_block.c). The forward's state lives in
 * model_acts.c, the passes in model_forward.c and model_backward.c. */
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

/* ---- adaptation --------------------------------------------------------- */

int aim_model_prompt_tokens(const aim_model *m)
{
	return m->tune && m->tune->cfg.kind == AIM_TUNE_PROMPT ? m->tune->cfg.prompts : 0;
}

int aim_model_set_tune(aim_model *m, struct aim_tune *t, int frozen)
{
	if (t && (t->depth != m->cfg.depth || t->dim != m->cfg.dim ||
		  t->mlp_hidden != m->cfg.mlp_hidden))
		return aim_error("adaptation made for another trunk shape");
	for (int l = 0; t && m->cfg.mlp != AIM_MLP_SWIGLU && l < t->depth; l++)
		if (aim_lora_mask(&t->cfg, l) & (1u << AIM_LORA_FC3))
			return aim_error("LoRA on mlp.fc3: this %s trunk's MLP has no fc3 (AIMv2's "
					 "SwiGLU MLP has one)", aim_config_family(&m->cfg));
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
