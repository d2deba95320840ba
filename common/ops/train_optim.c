/* Trainable tensors, gradient norm and clipping, AdamW, LR schedule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ops_bf16.h"
#include "train_optim.h"

void aim_optim_init(aim_optim *o)
{
	memset(o, 0, sizeof *o);
	o->beta1 = 0.9;
	o->beta2 = 0.95;
	o->eps = 1e-8;
	o->weight_decay = 0.05;
}

void aim_optim_free(aim_optim *o)
{
	for (int i = 0; i < o->n; i++)
		free(o->t[i].name);
	free(o->t);
	free(o->m);
	free(o->v);
	memset(o, 0, sizeof *o);
}

int aim_decays(const char *name)
{
	return !strstr(name, "bias") && !strstr(name, "norm") && !strstr(name, "pos_embed");
}

int aim_optim_add(aim_optim *o, const char *name, float *w, float *g, long n, int decay)
{
	if (o->n == o->cap) {
		int cap = o->cap ? 2 * o->cap : 64;
		aim_trainable *t = realloc(o->t, sizeof *t * cap);
		if (!t)
			return aim_error("out of memory");
		o->t = t;
		o->cap = cap;
	}
	aim_trainable *t = &o->t[o->n];
	t->name = strdup(name);
	if (!t->name)
		return aim_error("out of memory");
	t->w = w;
	t->g = g;
	t->n = n;
	t->decay = decay < 0 ? aim_decays(name) : decay;
	t->off = o->total;
	o->total += n;
	o->n++;
	return 0;
}

int aim_optim_alloc(aim_optim *o)
{
	o->m = calloc(o->total ? o->total : 1, sizeof(float));
	o->v = calloc(o->total ? o->total : 1, sizeof(float));
	if (!o->m || !o->v)
		return aim_error("out of memory for optimizer moments (%ld values)", o->total);
	return 0;
}

aim_trainable *aim_optim_find(const aim_optim *o, const char *name)
{
	for (int i = 0; i < o->n; i++)
		if (!strcmp(o->t[i].name, name))
			return &o->t[i];
	return NULL;
}

void aim_optim_zero_grad(aim_optim *o)
{
	for (int i = 0; i < o->n; i++)
		memset(o->t[i].g, 0, sizeof(float) * o->t[i].n);
}

/* Chunks small enough to spread across threads, fixed so that partial sums
 * are always formed and added in the same order. */
#define NORM_CHUNK 16384

double aim_sumsq(const float *g, long n)
{
	double total = 0, part[64];
	long nchunk = (n + NORM_CHUNK - 1) / NORM_CHUNK;
	for (long c0 = 0; c0 < nchunk; c0 += 64) {
		long c1 = c0 + 64 < nchunk ? c0 + 64 : nchunk;
		#pragma omp parallel for schedule(static)
		for (long c = c0; c < c1; c++) {
			long a = c * NORM_CHUNK, b = a + NORM_CHUNK < n ? a + NORM_CHUNK : n;
			double s = 0;
			for (long j = a; j < b; j++)
				s += (double)g[j] * g[j];
			part[c - c0] = s;
		}
		for (long c = c0; c < c1; c++)
			total += part[c - c0];
	}
	return total;
}

double aim_grad_norm(const aim_optim *o)
{
	double total = 0;
	for (int i = 0; i < o->n; i++)
		total += aim_sumsq(o->t[i].g, o->t[i].n);
	return sqrt(total);
}

void aim_grad_scale(aim_optim *o, float s)
{
	for (int i = 0; i < o->n; i++) {
		float *g = o->t[i].g;
		long n = o->t[i].n;
		#pragma omp parallel for schedule(static)
		for (long j = 0; j < n; j++)
			g[j] *= s;
	}
}

double aim_grad_clip(aim_optim *o, double max_norm)
{
	double norm = aim_grad_norm(o);
	/* torch.nn.utils.clip_grad_norm_: scale by max/(norm + 1e-6) when < 1 */
	if (max_norm > 0) {
		double coef = max_norm / (norm + 1e-6);
		if (coef < 1.0)
			aim_grad_scale(o, (float)coef);
	}
	return norm;
}

void aim_adamw_tensor(float *w, float *m, float *v, const float *g, long n, double lr,
		      double beta1, double beta2, double eps, double weight_decay, int decay,
		      long step)
{
	const float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps;
	const float step_size = (float)(lr / (1.0 - pow(beta1, (double)step)));
	const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)step));
	const float shrink = decay ? (float)(1.0 - lr * weight_decay) : 1.0f;
	#pragma omp parallel for schedule(static)
	for (long j = 0; j < n; j++) {
		float gj = g[j];
		float wj = w[j] * shrink;
		m[j] = m[j] * b1 + (1.0f - b1) * gj;
		v[j] = v[j] * b2 + (1.0f - b2) * gj * gj;
		float denom = sqrtf(v[j]) / bc2_sqrt + e;
		w[j] = wj - step_size * (m[j] / denom);
	}
	/* bf16 products on the CPU keep a rounded copy of each weight. */
	aim_bf16_stale(w, sizeof(float) * (size_t)n);
}

void aim_adamw_step(aim_optim *o, double lr, long step)
{
	for (int i = 0; i < o->n; i++) {
		aim_trainable *t = &o->t[i];
		aim_adamw_tensor(t->w, o->m + t->off, o->v + t->off, t->g, t->n, lr, o->beta1,
				 o->beta2, o->eps, o->weight_decay, t->decay, step);
	}
}

double aim_schedule_lr(const aim_schedule *s, long t)
{
	if (t < s->warmup)
		return s->lr * (double)(t + 1) / (double)s->warmup;
	long span = s->total - s->warmup;
	if (span <= 0)
		return s->lr;
	double f = (double)(t - s->warmup) / (double)span;
	if (f > 1)
		f = 1;
	return s->min_lr + 0.5 * (s->lr - s->min_lr) * (1.0 + cos(M_PI * f));
}
