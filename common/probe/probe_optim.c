/* Training a probe head: label-smoothed cross-entropy, AdamW on the head's
 * arena, the warmup + cosine schedule (probe_head.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "probe_head.h"
#include "train_optim.h"

/* ---- loss, optimiser, schedule ---------------------------------------- */

double aim_head_cross_entropy(const float *logits, const int64_t *labels, int64_t B, int C,
			 double smoothing, float *dlogits, int64_t *counted)
{
	int64_t n = 0;
	for (int64_t b = 0; b < B; b++)
		n += labels[b] >= 0 && labels[b] < C;
	if (counted)
		*counted = n;
	double total = 0;
	for (int64_t b = 0; b < B; b++) {
		const float *l = logits + b * C;
		float *g = dlogits ? dlogits + b * C : NULL;
		int64_t y = labels[b];
		if (y < 0 || y >= C) {
			if (g)
				memset(g, 0, (size_t)C * sizeof(float));
			continue;
		}
		double mx = l[0];
		for (int j = 1; j < C; j++)
			if (l[j] > mx)
				mx = l[j];
		double se = 0, sl = 0;
		for (int j = 0; j < C; j++) {
			se += exp(l[j] - mx);
			sl += l[j];
		}
		double lse = mx + log(se);
		total += (1 - smoothing) * (lse - l[y]) + smoothing * (lse - sl / C);
		if (g)
			for (int j = 0; j < C; j++) {
				double target = smoothing / C + (j == y ? 1 - smoothing : 0);
				g[j] = (float)((exp(l[j] - lse) - target) / (double)n);
			}
	}
	return n ? total / (double)n : NAN;
}

int aim_head_adamw_init(aim_head_adamw *o, const aim_head *h)
{
	memset(o, 0, sizeof *o);
	o->m = calloc(h->nparams ? h->nparams : 1, sizeof(float));
	o->v = calloc(h->nparams ? h->nparams : 1, sizeof(float));
	if (!o->m || !o->v) {
		aim_head_adamw_free(o);
		return aim_error("head: out of memory for the optimiser");
	}
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->eps = 1e-8;
	return AIM_OK;
}

void aim_head_adamw_free(aim_head_adamw *o)
{
	free(o->m);
	free(o->v);
	memset(o, 0, sizeof *o);
}

/* One parameter range of the flat head vector: the trainer's AdamW. */
static void adamw_range(aim_head_adamw *o, float *p, const float *g, size_t off, size_t n,
			double lr, double wd)
{
	aim_adamw_tensor(p + off, o->m + off, o->v + off, g + off, (long)n, lr, o->beta1, o->beta2,
			 o->eps, wd, wd != 0, (long)o->t);
}

void aim_head_adamw_step(aim_head_adamw *o, aim_head *h, const float *grad, double lr,
			 double weight_decay)
{
	const aim_head_config *c = &h->cfg;
	size_t D = (size_t)c->dim;
	o->t++;
	if (h->cls_token) {
		adamw_range(o, h->params, grad, h->cls_token - h->params, (size_t)c->queries * D, lr, 0);
		adamw_range(o, h->params, grad, h->wk - h->params, D * D, lr, weight_decay);
		adamw_range(o, h->params, grad, h->wv - h->params, D * D, lr, weight_decay);
	}
	adamw_range(o, h->params, grad, h->wlin - h->params, (size_t)c->classes * D, lr,
		    weight_decay);
	if (h->blin)
		adamw_range(o, h->params, grad, h->blin - h->params, (size_t)c->classes, lr, 0);
}

double aim_head_lr_schedule(double base, double t, double warmup, double total)
{
	if (warmup > 0 && t < warmup)
		return base * t / warmup;
	if (total <= warmup)
		return base;
	double f = (t - warmup) / (total - warmup);
	if (f > 1)
		f = 1;
	return base * 0.5 * (1 + cos(M_PI * f));
}

