/* Features of a frozen trunk from a patches record (trunk_features.h). */
#include "trunk_features.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ops.h"
#include "patches.h"

int aim_trunk_features_init(aim_trunk_features *t, aim_model *m, const char *layers)
{
	memset(t, 0, sizeof *t);
	t->m = m;
	int n = aim_config_parse_layers(&m->cfg, layers, t->layers);
	if (n < 0)
		return AIM_ERR;
	t->nl = n;
	t->post_norm = m->cfg.norm == AIM_NORM_RMS;
	for (int i = 0; i < n; i++)
		t->keep[t->layers[i]] = 1;
	return AIM_OK;
}

void aim_trunk_features_free(aim_trunk_features *t)
{
	free(t->x);
	free(t->feat);
	free(t->order);
	if (t->m && !t->m->be->host_memory) {
		t->m->be->free(t->dx);
		t->m->be->free(t->dfeat);
	}
	memset(t, 0, sizeof *t);
}

const char *aim_trunk_features_layers_json(const aim_trunk_features *t, char *buf, size_t n)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, n - o, "[");
	for (int i = 0; i < t->nl && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%d", i ? "," : "", t->layers[i]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
	return buf;
}

int aim_trunk_patches(aim_trunk_features *t, const aim_record *r, const char *what,
		      const float **x, int64_t *Bp, aim_geometry *g)
{
	const aim_config *c = &t->m->cfg;
	if (aim_patches_geometry(g, r, c, what))
		return AIM_ERR;
	const aim_tensor *pt = aim_record_find(r, "patches");
	const int64_t B = pt->shape[0], K = g->K;
	size_t n = (size_t)(B * K * g->P);
	if (n > t->xcap) {
		free(t->x);
		t->xcap = 0;
		if (!(t->x = malloc(n * sizeof(float))))
			return aim_error("out of memory for %zu patch values", n);
		t->xcap = n;
	}
	#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < B; i++)
		aim_patches_to_f32(t->x + (size_t)i * K * g->P, pt, i, g);
	/* a causal model probed with its mask kept sees its pretraining order */
	const int *order = t->mask == AIM_MASK_CAUSAL ? t->order : NULL;
	if (order && (g->rows != t->order_rows || g->cols != t->order_cols))
		return aim_error("%s: a %dx%d grid, but the model's order is of its %dx%d grid", what,
				 g->rows, g->cols, t->order_rows, t->order_cols);
	if (order && aim_permute_patches(t->x, order, B, K, g->P) < 0)
		return AIM_ERR;
	*x = t->x;
	*Bp = B;
	return AIM_OK;
}

int aim_trunk_features_run(aim_trunk_features *t, const aim_record *r, const char *what,
			   const float **feat, int64_t *Bp, int64_t *Kp)
{
	const aim_config *c = &t->m->cfg;
	aim_geometry g;
	const float *hx;
	int64_t B;
	if (aim_trunk_patches(t, r, what, &hx, &B, &g))
		return AIM_ERR;
	const int64_t K = g.K;
	const int rows = g.rows, cols = g.cols;
	size_t n = (size_t)(B * K * g.P), D = (size_t)c->dim;
	const int *order = t->mask == AIM_MASK_CAUSAL ? t->order : NULL;
	const aim_backend *be = t->m->be;
	const float *xin = t->x;
	if (!be->host_memory) { /* a device backend: the patches to its memory */
		size_t nx = n;
		if (nx > t->dxcap) {
			be->free(t->dx);
			t->dxcap = 0;
			if (!(t->dx = be->alloc(nx * sizeof(float))))
				return aim_error("out of %s memory for patches", be->name);
			t->dxcap = nx;
		}
		be->upload(t->dx, t->x, nx * sizeof(float));
		xin = t->dx;
	}
	aim_forward_opts fo = {.mask = t->mask, .keep = t->keep, .order = order};
	if (aim_model_forward(t->m, xin, (int)B, rows, cols, &fo))
		return aim_error_prefix("%s", what);
	size_t per = (size_t)(B * K) * D;
	if (per > t->fcap) {
		free(t->feat);
		t->fcap = 0;
		if (!(t->feat = malloc(per * sizeof(float))))
			return aim_error("out of memory for features");
		t->fcap = per;
	}
	/* the average of the chosen blocks' patch tokens: there on a device
	 * (the average comes back), here on the CPU */
	float *acc = t->feat;
	if (!be->host_memory) {
		if (per > t->dfcap) {
			be->free(t->dfeat);
			t->dfcap = 0;
			if (!(t->dfeat = be->alloc(per * sizeof(float))))
				return aim_error("out of %s memory for features", be->name);
			t->dfcap = per;
		}
		acc = t->dfeat;
	}
	be->zero(acc, per * sizeof(float));
	for (int i = 0; i < t->nl; i++)
		if (aim_model_patch_tokens_add(t->m, t->layers[i], 1.0f / (float)t->nl, acc))
			return aim_error_prefix("%s", what);
	if (t->post_norm)
		aim_model_post_norm(t->m, acc, acc, B * K);
	if (!be->host_memory)
		be->download(t->feat, t->dfeat, per * sizeof(float));
	*feat = t->feat;
	*Bp = B;
	*Kp = K;
	return AIM_OK;
}
