/* The AIM v1 trunk: parameters, forward, backward (see model.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"

#define LN_EPS 1e-6f

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
	int cap = 6 + 16 * c->depth;
	m->info = calloc(cap, sizeof *m->info);
	m->p.blocks = calloc(c->depth, sizeof *m->p.blocks);
	m->g.blocks = calloc(c->depth, sizeof *m->g.blocks);
	if (!m->info || !m->p.blocks || !m->g.blocks)
		return aim_error("out of memory for the parameter table");
	int rc = add_param(m, cap, "preprocessor.patchifier.proj.weight", &m->p.patch_w,
			   &m->g.patch_w, 4, D, c->channels, c->patch, c->patch);
	rc |= P1("preprocessor.patchifier.proj.bias", patch_b, D);
	rc |= P1("preprocessor.patchifier.norm.weight", patch_ln_w, D);
	rc |= P1("preprocessor.patchifier.norm.bias", patch_ln_b, D);
	for (int i = 0; i < c->depth && rc == 0; i++) {
		aim_block_params *bp = &m->p.blocks[i], *bg = &m->g.blocks[i];
		char n[64];
#define B1(suffix, field, len) (snprintf(n, sizeof n, "trunk.blocks.%d.%s", i, suffix), \
	add_param(m, cap, n, &bp->field, &bg->field, 1, len, 0, 0, 0))
#define B2(suffix, field, r, cc) (snprintf(n, sizeof n, "trunk.blocks.%d.%s", i, suffix), \
	add_param(m, cap, n, &bp->field, &bg->field, 2, r, cc, 0, 0))
		rc |= B1("norm_1.weight", ln1_w, D);
		rc |= B1("norm_1.bias", ln1_b, D);
		rc |= B2("attn.qkv.weight", qkv_w, 3 * D, D);
		rc |= B2("attn.proj.weight", proj_w, D, D);
		if (c->proj_bias)
			rc |= B1("attn.proj.bias", proj_b, D);
		rc |= B1("norm_2.weight", ln2_w, D);
		rc |= B1("norm_2.bias", ln2_b, D);
		rc |= B2("mlp.fc1.weight", fc1_w, Hm, D);
		if (c->mlp_bias)
			rc |= B1("mlp.fc1.bias", fc1_b, Hm);
		rc |= B2("mlp.fc2.weight", fc2_w, D, Hm);
		if (c->mlp_bias)
			rc |= B1("mlp.fc2.bias", fc2_b, D);
#undef B1
#undef B2
	}
	rc |= P1("trunk.post_trunk_norm.weight", post_w, D);
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
		if (p->ndim >= 2) {
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

struct aim_model_state {
	int B, rows, cols, K, train, last_run, post_norm;
	size_t N;                 /* B·K tokens */
	size_t cap_N;             /* tokens the arena was sized for */
	int cap_train;
	int pos_rows, pos_cols;
	float *pos;               /* [K, D] host or backend memory */
	const float *patches;
	aim_mask_kind mask;
	int *prefix;              /* [B] copy */
	int nprefix;
	unsigned char *kept;      /* [depth] outputs valid after the forward */
	/* inference */
	float *cur, *ln, *qkv, *att, *h, *normed;
	float **out;              /* [depth] */
	/* training */
	float **res, **qkv_l, **att_l, **mid_l, **fc1_l, **lse_l;
	float **mean1, **rstd1, **mean2, **rstd2;
	float *patch_out, *pmean, *prstd, *post_mean, *post_rstd;
	float *dres, *dmid, *dtmp, *dh1, *dh2, *dqkv;
};

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
	int n = 0;
#define ACT(ptr, count) do { if (n < cap) { e[n].slot = &(ptr); e[n].n = (count); } n++; } while (0)
	ACT(s->cur, N * D);
	ACT(s->ln, N * D);
	ACT(s->qkv, N * 3 * D);
	ACT(s->att, N * D);
	ACT(s->h, N * Hm);
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
			ACT(s->lse_l[l], (size_t)B * c->heads * K);
			ACT(s->mean1[l], N);
			ACT(s->rstd1[l], N);
			ACT(s->mean2[l], N);
			ACT(s->rstd2[l], N);
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
		ACT(s->dqkv, N * 3 * D);
	}
#undef ACT
	return n;
}

static int ensure_state(aim_model *m)
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
	float ***lists[] = {&s->qkv_l, &s->att_l, &s->mid_l, &s->fc1_l, &s->lse_l,
			    &s->mean1, &s->rstd1, &s->mean2, &s->rstd2};
	int ok = s->kept && s->out && s->res;
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
		ok = ok && (*lists[i] = calloc(depth, sizeof(float *)));
	return ok ? AIM_OK : aim_error("out of memory");
}

static void drop_acts(aim_model *m)
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
static int alloc_acts(aim_model *m, size_t N, int B, int K, int train, const unsigned char *keep)
{
	struct aim_model_state *s = m->st;
	int depth = m->cfg.depth;
	int cap = 16 + 10 * (depth + 1);
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
	drop_acts(m);
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

static int ensure_pos(aim_model *m, int rows, int cols)
{
	struct aim_model_state *s = m->st;
	if (s->pos && s->pos_rows == rows && s->pos_cols == cols)
		return AIM_OK;
	size_t n = (size_t)rows * cols * m->cfg.dim;
	float *host = malloc(n * sizeof(float));
	if (!host)
		return aim_error("out of memory");
	aim_sincos_pos_2d(host, rows, cols, m->cfg.dim);
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

/* ---- forward ------------------------------------------------------------ */

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
	const aim_backend *be = m->be;
	struct aim_model_state *s = m->st;
	const aim_config *c = &m->cfg;
	int K = j->K, D = c->dim, Hm = c->mlp_hidden, H = c->heads, hd = D / H;
	int P = c->channels * c->patch * c->patch;
	int b0 = g * j->group, nb = s->B - b0 < j->group ? s->B - b0 : j->group;
	int N = nb * K;
	size_t r0 = (size_t)b0 * K;
	float *x = s->cur + r0 * D, *ln = s->ln + r0 * D, *qkv = s->qkv + r0 * 3 * D;
	float *att = s->att + r0 * D, *h = s->h + r0 * Hm;
	const int *prefix = j->prefix ? j->prefix + b0 : NULL;

	be->patch_embed_fwd(x, j->patches + r0 * P, m->p.patch_w, m->p.patch_b, N, P, D);
	be->layernorm_fwd(x, NULL, NULL, x, m->p.patch_ln_w, m->p.patch_ln_b, N, D, LN_EPS);
	be->add_rows(x, s->pos, nb, (size_t)K * D);
	for (int l = 0; l <= j->last; l++) {
		const aim_block_params *bp = &m->p.blocks[l];
		/* x is updated in place; the residual adds ride on the GEMMs. */
		be->layernorm_fwd(ln, NULL, NULL, x, bp->ln1_w, bp->ln1_b, N, D, LN_EPS);
		be->linear_fwd(qkv, ln, bp->qkv_w, NULL, N, D, 3 * D);
		be->attention_fwd(att, NULL, qkv, nb, K, H, hd, j->mask, prefix);
		be->linear_fwd_acc(x, att, bp->proj_w, bp->proj_b, N, D, D);
		be->layernorm_fwd(ln, NULL, NULL, x, bp->ln2_w, bp->ln2_b, N, D, LN_EPS);
		be->linear_fwd(h, ln, bp->fc1_w, bp->fc1_b, N, D, Hm);
		be->gelu_fwd(h, h, (size_t)N * Hm);
		be->linear_fwd_acc(x, h, bp->fc2_w, bp->fc2_b, N, Hm, D);
		if (s->kept[l])
			be->copy(s->out[l] + r0 * D, x, (size_t)N * D * sizeof(float));
	}
	if (j->post_norm)
		be->layernorm_fwd(s->normed + r0 * D, NULL, NULL, x, m->p.post_w, m->p.post_b, N, D,
				  LN_EPS);
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
	if (ensure_state(m) < 0)
		return AIM_ERR;
	struct aim_model_state *s = m->st;
	int K = rows * cols, D = c->dim, Hm = c->mlp_hidden, H = c->heads, hd = D / H;
	int P = c->channels * c->patch * c->patch;
	size_t N = (size_t)B * K;
	if (N > (size_t)INT32_MAX / (size_t)(Hm > 3 * D ? Hm : 3 * D))
		return aim_error("batch too large (%zu tokens)", N);

	/* Which blocks to run and keep. */
	unsigned char *keep = s->kept;
	int last = c->depth - 1;
	if (o->train) {
		memset(keep, 1, c->depth);
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
	if (alloc_acts(m, N, B, K, o->train, keep) < 0 || ensure_pos(m, rows, cols) < 0)
		return AIM_ERR;
	s->B = B; s->rows = rows; s->cols = cols; s->K = K; s->N = N;
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
		if (be->parallel_groups && nt > 1 && B > 1) {
			int per = (B + nt - 1) / nt, want = (512 + K - 1) / K;
			job.group = per < want ? per : want;
			be->parallel_groups(infer_group, &job, (B + job.group - 1) / job.group);
		} else {
			job.group = B;
			infer_group(&job, 0);
		}
		return AIM_OK;
	}

	/* Training: every activation kept. Patch embedding, LayerNorm, positions. */
	float *x = s->res[0];
	be->patch_embed_fwd(s->patch_out, patches, m->p.patch_w, m->p.patch_b, (int)N, P, D);
	be->layernorm_fwd(x, s->pmean, s->prstd, s->patch_out, m->p.patch_ln_w, m->p.patch_ln_b,
			  (int)N, D, LN_EPS);
	be->add_rows(x, s->pos, B, (size_t)K * D);
	for (int l = 0; l <= last; l++) {
		const aim_block_params *bp = &m->p.blocks[l];
		float *xin = s->res[l], *mid = s->mid_l[l], *xout = s->res[l + 1];
		be->layernorm_fwd(s->ln, s->mean1[l], s->rstd1[l], xin, bp->ln1_w, bp->ln1_b,
				  (int)N, D, LN_EPS);
		be->linear_fwd(s->qkv_l[l], s->ln, bp->qkv_w, NULL, (int)N, D, 3 * D);
		be->attention_fwd(s->att_l[l], s->lse_l[l], s->qkv_l[l], B, K, H, hd, o->mask,
				  prefix);
		be->copy(mid, xin, N * D * sizeof(float));
		be->linear_fwd_acc(mid, s->att_l[l], bp->proj_w, bp->proj_b, (int)N, D, D);
		be->layernorm_fwd(s->ln, s->mean2[l], s->rstd2[l], mid, bp->ln2_w, bp->ln2_b,
				  (int)N, D, LN_EPS);
		be->linear_fwd(s->fc1_l[l], s->ln, bp->fc1_w, bp->fc1_b, (int)N, D, Hm);
		be->gelu_fwd(s->h, s->fc1_l[l], N * Hm);
		be->copy(xout, mid, N * D * sizeof(float));
		be->linear_fwd_acc(xout, s->h, bp->fc2_w, bp->fc2_b, (int)N, Hm, D);
		x = xout;
	}
	if (o->post_norm)
		be->layernorm_fwd(s->normed, s->post_mean, s->post_rstd, x, m->p.post_w, m->p.post_b,
				  (int)N, D, LN_EPS);
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

const float *aim_model_normed(const aim_model *m)
{
	return m->st && m->st->post_norm ? m->st->normed : NULL;
}

void aim_model_post_norm(const aim_model *m, float *y, const float *x, int64_t n)
{
	m->be->layernorm_fwd(y, NULL, NULL, x, m->p.post_w, m->p.post_b, (int)n, m->cfg.dim,
			     LN_EPS);
}

/* ---- backward ----------------------------------------------------------- */

int aim_model_backward(aim_model *m, const float *dy, int dy_is_normed)
{
	struct aim_model_state *s = m->st;
	const aim_backend *be = m->be;
	const aim_config *c = &m->cfg;
	if (!s || !s->train)
		return aim_error("backward needs a training forward first");
	if (!m->grad_arena)
		return aim_error("backward needs the gradient arena (aim_model_alloc_grads)");
	if (dy_is_normed && !s->post_norm)
		return aim_error("backward from the post-trunk norm needs a forward with post_norm");
	int B = s->B, K = s->K, D = c->dim, Hm = c->mlp_hidden, H = c->heads, hd = D / H;
	int N = (int)s->N, P = c->channels * c->patch * c->patch;
	size_t ND = (size_t)N * D, NH = (size_t)N * Hm;
	const int *prefix = s->mask == AIM_MASK_PREFIX ? s->prefix : NULL;

	float *dres = s->dres;
	be->zero(dres, ND * sizeof(float));
	if (dy_is_normed)
		be->layernorm_bwd(dres, m->g.post_w, m->g.post_b, dy, s->res[c->depth], m->p.post_w,
				  s->post_mean, s->post_rstd, N, D);
	else
		be->copy(dres, dy, ND * sizeof(float));

	for (int l = c->depth - 1; l >= 0; l--) {
		const aim_block_params *bp = &m->p.blocks[l];
		aim_block_params *bg = &m->g.blocks[l];
		float *mid = s->mid_l[l], *xin = s->res[l];
		/* MLP branch: out = mid + fc2(gelu(fc1(LN2(mid)))) */
		be->copy(s->dmid, dres, ND * sizeof(float));
		be->layernorm_fwd(s->ln, NULL, NULL, mid, bp->ln2_w, bp->ln2_b, N, D, LN_EPS);
		be->gelu_fwd(s->h, s->fc1_l[l], NH);
		be->zero(s->dh1, NH * sizeof(float));
		be->linear_bwd(s->dh1, bg->fc2_w, bg->fc2_b, dres, s->h, bp->fc2_w, N, Hm, D);
		be->zero(s->dh2, NH * sizeof(float));
		be->gelu_bwd(s->dh2, s->dh1, s->fc1_l[l], NH);
		be->zero(s->dtmp, ND * sizeof(float));
		be->linear_bwd(s->dtmp, bg->fc1_w, bg->fc1_b, s->dh2, s->ln, bp->fc1_w, N, D, Hm);
		be->layernorm_bwd(s->dmid, bg->ln2_w, bg->ln2_b, s->dtmp, mid, bp->ln2_w,
				  s->mean2[l], s->rstd2[l], N, D);
		/* attention branch: mid = x + proj(attn(qkv(LN1(x)))) */
		be->zero(s->dtmp, ND * sizeof(float));
		be->linear_bwd(s->dtmp, bg->proj_w, bg->proj_b, s->dmid, s->att_l[l], bp->proj_w,
			       N, D, D);
		be->zero(s->dqkv, ND * 3 * sizeof(float));
		be->attention_bwd(s->dqkv, s->dtmp, s->qkv_l[l], s->att_l[l], s->lse_l[l], B, K, H,
				  hd, s->mask, prefix);
		be->layernorm_fwd(s->ln, NULL, NULL, xin, bp->ln1_w, bp->ln1_b, N, D, LN_EPS);
		be->zero(s->dtmp, ND * sizeof(float));
		be->linear_bwd(s->dtmp, bg->qkv_w, NULL, s->dqkv, s->ln, bp->qkv_w, N, D, 3 * D);
		be->copy(dres, s->dmid, ND * sizeof(float));
		be->layernorm_bwd(dres, bg->ln1_w, bg->ln1_b, s->dtmp, xin, bp->ln1_w, s->mean1[l],
				  s->rstd1[l], N, D);
	}
	/* embedding: x0 = LN_patch(patch_embed(patches)) + pos */
	be->zero(s->dtmp, ND * sizeof(float));
	be->layernorm_bwd(s->dtmp, m->g.patch_ln_w, m->g.patch_ln_b, dres, s->patch_out,
			  m->p.patch_ln_w, s->pmean, s->prstd, N, D);
	be->patch_embed_bwd(m->g.patch_w, m->g.patch_b, s->dtmp, s->patches, N, P, D);
	return AIM_OK;
}

/* ---- misc --------------------------------------------------------------- */

double aim_model_flops(const aim_config *c, int rows, int cols)
{
	double K = (double)rows * cols, D = c->dim, Hm = c->mlp_hidden;
	double P = (double)c->channels * c->patch * c->patch;
	double per_block = 2 * K * D * (3 * D + D + 2 * Hm) + 4 * K * K * D;
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
		free(s->prefix);
		free(s->kept);
		free(s->out);
		free(s->res);
		float **lists[] = {s->qkv_l, s->att_l, s->mid_l, s->fc1_l, s->lse_l,
				   s->mean1, s->rstd1, s->mean2, s->rstd2};
		for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
			free(lists[i]);
		free(s);
	}
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
