/* LoRA, adapters and prompt tokens on the trunk (model_tune.h). */
#include "model_tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static const char *const target_path[AIM_LORA_NT] = {"attn.qkv", "attn.proj", "mlp.fc1",
						       "mlp.fc2", "mlp.fc3"};
static const char *const target_short[AIM_LORA_NT] = {"qkv", "proj", "fc1", "fc2", "fc3"};

const char *aim_lora_target_path(int t)
{
	return t >= 0 && t < AIM_LORA_NT ? target_path[t] : "?";
}

const char *aim_tune_kind_name(aim_tune_kind k)
{
	switch (k) {
	case AIM_TUNE_LORA: return "lora";
	case AIM_TUNE_FULL: return "full";
	case AIM_TUNE_ADAPTER: return "adapter";
	case AIM_TUNE_PROMPT: return "prompt";
	default: return NULL;
	}
}

int aim_lora_parse_targets(const char *list, unsigned *bits)
{
	*bits = 0;
	const char *p = list;
	while (*p) {
		size_t n = strcspn(p, ",");
		int found = -1;
		for (int t = 0; t < AIM_LORA_NT; t++)
			if (n == strlen(target_short[t]) && !strncmp(p, target_short[t], n))
				found = t;
		if (found < 0)
			return aim_error("LoRA target '%.*s' is none of qkv, proj, fc1, fc2, fc3", (int)n, p);
		*bits |= 1u << found;
		p += n;
		if (*p == ',')
			p++;
	}
	if (!*bits)
		return aim_error("no LoRA targets in '%s'", list);
	return AIM_OK;
}

unsigned aim_lora_mask(const aim_tune_config *c, int l)
{
	if (c->kind != AIM_TUNE_LORA || c->block_off[l])
		return 0;
	return c->block_mask[l] ? c->block_mask[l] : c->targets;
}

void aim_lora_dims(const aim_tune *t, int target, int *in, int *out)
{
	int D = t->dim, H = t->mlp_hidden;
	/* in, out: a multiple of D, or (-1) the MLP width */
	static const int dims[AIM_LORA_NT][2] = {{1, 3}, {1, 1}, {1, -1}, {-1, 1}, {1, -1}};
	*in = dims[target][0] > 0 ? D * dims[target][0] : H;
	*out = dims[target][1] > 0 ? D * dims[target][1] : H;
}

double aim_lora_scale(const aim_tune *t)
{
	if (t->cfg.rank < 1)
		return 0.0;
	return t->cfg.alpha / (t->cfg.rslora ? sqrt((double)t->cfg.rank) : (double)t->cfg.rank);
}

/* ---- the tensor table --------------------------------------------------- */

static int add(aim_tune *t, int cap, const char *name, float **slot, float **gslot, int ndim,
	       int64_t a, int64_t b, int64_t c)
{
	if (t->nparams >= cap)
		return aim_error("internal: tune table full");
	aim_param_info *p = &t->info[t->nparams++];
	snprintf(p->name, sizeof p->name, "%s", name);
	p->ndim = ndim;
	int64_t s[3] = {a, b, c};
	p->numel = 1;
	for (int i = 0; i < ndim; i++) {
		p->shape[i] = s[i];
		p->numel *= (size_t)s[i];
	}
	p->offset = t->arena_floats;
	t->arena_floats += (p->numel + 15) & ~(size_t)15;
	p->slot = slot;
	p->grad_slot = gslot;
	return AIM_OK;
}

static int build_table(aim_tune *t)
{
	const aim_tune_config *c = &t->cfg;
	int D = t->dim, L = t->depth;
	int cap = 2 * AIM_LORA_NT * L + 4;
	t->info = calloc(cap, sizeof *t->info);
	t->lora = calloc(L, sizeof *t->lora);
	t->glora = calloc(L, sizeof *t->glora);
	t->adp = calloc(L, sizeof *t->adp);
	t->gadp = calloc(L, sizeof *t->gadp);
	if (!t->info || !t->lora || !t->glora || !t->adp || !t->gadp)
		return aim_error("out of memory");
	char n[64];
	int rc = 0;
	if (c->kind == AIM_TUNE_LORA) {
		for (int l = 0; l < L; l++) {
			for (int k = 0; k < AIM_LORA_NT; k++) {
				if (!(aim_lora_mask(c, l) & (1u << k)))
					continue;
				int in, out;
				aim_lora_dims(t, k, &in, &out);
				snprintf(n, sizeof n, "base_model.model.trunk.blocks.%d.%s.lora_A.weight",
					 l, target_path[k]);
				rc |= add(t, cap, n, &t->lora[l][k].a, &t->glora[l][k].a, 2, c->rank,
					  in, 0);
				snprintf(n, sizeof n, "base_model.model.trunk.blocks.%d.%s.lora_B.weight",
					 l, target_path[k]);
				rc |= add(t, cap, n, &t->lora[l][k].b, &t->glora[l][k].b, 2, out,
					  c->rank, 0);
			}
		}
	} else if (c->kind == AIM_TUNE_ADAPTER) {
		int a = c->adapter_dim;
		for (int l = 0; l < L; l++) {
			aim_adapter_params *p = &t->adp[l], *g = &t->gadp[l];
#define AD(sfx, f, nd, x, y) (snprintf(n, sizeof n, "adapter.blocks.%d.%s", l, sfx), \
	add(t, cap, n, &p->f, &g->f, nd, x, y, 0))
			rc |= AD("down.weight", down_w, 2, a, D);
			rc |= AD("down.bias", down_b, 1, a, 0);
			rc |= AD("up.weight", up_w, 2, D, a);
			rc |= AD("up.bias", up_b, 1, D, 0);
#undef AD
		}
	} else if (c->kind == AIM_TUNE_PROMPT) {
		rc |= add(t, cap, "prompt.tokens", &t->prompt, &t->gprompt, 3, c->deep ? L : 1,
			  c->prompts, D);
	}
	return rc ? AIM_ERR : AIM_OK;
}

/* splitmix64 into a uniform double in [0, 1). */
static double uniform(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) / 9007199254740992.0;
}

static void fill_uniform(float *w, size_t n, double bound, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		w[i] = (float)((uniform(s) * 2 - 1) * bound);
}

static void init_values(aim_tune *t, float *host, uint64_t seed)
{
	uint64_t s = seed ^ 0x6c6f7261ull;
	for (int i = 0; i < t->nparams; i++) {
		aim_param_info *p = &t->info[i];
		float *w = host + p->offset;
		const char *nm = p->name;
		if (strstr(nm, ".lora_A.")) /* kaiming_uniform_(a=√5): U(±1/√in) */
			fill_uniform(w, p->numel, 1.0 / sqrt((double)p->shape[1]), &s);
		else if (strstr(nm, ".down.")) /* nn.Linear's default: U(±1/√in) */
			fill_uniform(w, p->numel, 1.0 / sqrt((double)t->dim), &s);
		else if (!strcmp(nm, "prompt.tokens"))
			fill_uniform(w, p->numel, sqrt(6.0 / (t->patch_values + t->dim)), &s);
		/* lora_B and the adapter's up projection stay zero */
	}
}

int aim_tune_create(aim_tune **out, const aim_tune_config *c, int depth, int dim,
		    int mlp_hidden, int patch_values, const aim_backend *be, uint64_t seed)
{
	*out = NULL;
	if (c->kind == AIM_TUNE_LORA && c->rank < 1)
		return aim_error("LoRA needs a rank of at least 1 and a target");
	if (c->kind == AIM_TUNE_ADAPTER && c->adapter_dim < 1)
		return aim_error("adapters need a bottleneck width of at least 1");
	if (c->kind == AIM_TUNE_PROMPT && c->prompts < 1)
		return aim_error("prompt tuning needs at least 1 prompt token");
	if (depth > AIM_MAX_BLOCKS)
		return aim_error("too many blocks");
	aim_tune *t = calloc(1, sizeof *t);
	if (!t)
		return aim_error("out of memory");
	t->cfg = *c;
	if (c->kind != AIM_TUNE_PROMPT)
		t->cfg.prompts = t->cfg.deep = 0;
	t->depth = depth;
	t->dim = dim;
	t->mlp_hidden = mlp_hidden;
	t->patch_values = patch_values;
	t->be = be ? be : aim_backend_cpu();
	if (build_table(t) < 0)
		goto fail;
	if (t->arena_floats) {
		size_t bytes = t->arena_floats * sizeof(float);
		t->arena = t->be->alloc(bytes);
		float *host = t->be->host_memory ? t->arena : calloc(t->arena_floats, sizeof(float));
		if (!t->arena || !host) {
			if (host && host != t->arena)
				free(host);
			aim_error("out of memory for %zu adapter values", t->arena_floats);
			goto fail;
		}
		init_values(t, host, seed);
		if (!t->be->host_memory) {
			t->be->upload(t->arena, host, bytes);
			free(host);
		}
		for (int i = 0; i < t->nparams; i++)
			*t->info[i].slot = t->arena + t->info[i].offset;
	}
	*out = t;
	return AIM_OK;
fail:
	aim_tune_free(t);
	return AIM_ERR;
}

int aim_tune_alloc_grads(aim_tune *t)
{
	if (!t->grad_arena && t->arena_floats) {
		t->grad_arena = t->be->alloc(t->arena_floats * sizeof(float));
		if (!t->grad_arena)
			return aim_error("out of memory for adapter gradients");
		for (int i = 0; i < t->nparams; i++)
			*t->info[i].grad_slot = t->grad_arena + t->info[i].offset;
	}
	aim_tune_zero_grads(t);
	return AIM_OK;
}

void aim_tune_zero_grads(aim_tune *t)
{
	if (t->grad_arena)
		t->be->zero(t->grad_arena, t->arena_floats * sizeof(float));
}

aim_param_info *aim_tune_param(const aim_tune *t, const char *name)
{
	for (int i = 0; i < t->nparams; i++)
		if (!strcmp(t->info[i].name, name))
			return &t->info[i];
	return NULL;
}

size_t aim_tune_count(const aim_tune *t)
{
	size_t n = 0;
	for (int i = 0; i < t->nparams; i++)
		n += t->info[i].numel;
	return n;
}

void aim_tune_free(aim_tune *t)
{
	if (!t)
		return;
	if (t->arena)
		t->be->free(t->arena);
	if (t->grad_arena)
		t->be->free(t->grad_arena);
	free(t->info);
	free(t->lora);
	free(t->glora);
	free(t->adp);
	free(t->gadp);
	free(t);
}

/* ---- ops ---------------------------------------------------------------- */

void aim_lora_fwd(const aim_backend *be, const aim_lora_pair *p, float s, float *y,
		  const float *x, float *xa, int N, int in, int out, int r)
{
	be->linear_fwd(xa, x, p->a, NULL, N, in, r);
	be->scale(xa, s, xa, (size_t)N * r);
	be->linear_fwd_acc(y, xa, p->b, NULL, N, r, out);
}

void aim_lora_bwd(const aim_backend *be, const aim_lora_pair *p, const aim_lora_pair *g,
		  float s, float *dx, const float *dy, const float *x, const float *xa,
		  float *dxa, int N, int in, int out, int r)
{
	/* y += xa·Bᵀ: dB += dyᵀ·xa, d(xa) = dy·B */
	be->zero(dxa, (size_t)N * r * sizeof(float));
	be->linear_bwd(dxa, g ? g->b : NULL, NULL, dy, xa, p->b, N, r, out);
	/* xa = s·x·Aᵀ */
	be->scale(dxa, s, dxa, (size_t)N * r);
	be->linear_bwd(dx, g ? g->a : NULL, NULL, dxa, x, p->a, N, in, r);
}

void aim_adapter_fwd(const aim_backend *be, const aim_adapter_params *p, float *y,
		     const float *m, float *hpre, float *z, int N, int D, int a)
{
	be->linear_fwd(hpre, m, p->down_w, p->down_b, N, D, a);
	be->gelu_fwd(z, hpre, (size_t)N * a);
	be->axpy(y, 1.0f, m, (size_t)N * D);
	be->linear_fwd_acc(y, z, p->up_w, p->up_b, N, a, D);
}

void aim_adapter_bwd(const aim_backend *be, const aim_adapter_params *p,
		     const aim_adapter_params *g, float *dm, const float *dy, const float *m,
		     const float *hpre, float *z, float *dz, int N, int D, int a)
{
	size_t NA = (size_t)N * a;
	be->copy(dm, dy, (size_t)N * D * sizeof(float));
	be->gelu_fwd(z, hpre, NA);
	be->zero(dz, NA * sizeof(float));
	be->linear_bwd(dz, g ? g->up_w : NULL, g ? g->up_b : NULL, dy, z, p->up_w, N, a, D);
	/* dz now holds d(GELU output); back through the GELU into z */
	be->zero(z, NA * sizeof(float));
	be->gelu_bwd(z, dz, hpre, NA);
	be->linear_bwd(dm, g ? g->down_w : NULL, g ? g->down_b : NULL, z, m, p->down_w, N, D, a);
}

int aim_tune_attach_new(aim_model *model, const aim_tune_config *cfg, uint64_t seed)
{
	const aim_config *c = &model->cfg;
	aim_tune *t;
	if (aim_tune_create(&t, cfg, c->depth, c->dim, c->mlp_hidden,
			    c->channels * c->patch * c->patch, model->be, seed) ||
	    aim_model_set_tune(model, t, 1))
		return AIM_ERR;
	return AIM_OK;
}
