/* Features of a frozen trunk from a patches record (trunk_features.h). */
#include "trunk_features.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "ops.h"

int aim_trunk_features_init(aim_trunk_features *t, aim_model *m, const char *layers)
{
	memset(t, 0, sizeof *t);
	t->m = m;
	int n = aim_config_parse_layers(&m->cfg, layers, t->layers);
	if (n < 0)
		return AIM_ERR;
	t->nl = n;
	for (int i = 0; i < n; i++)
		t->keep[t->layers[i]] = 1;
	return AIM_OK;
}

void aim_trunk_features_free(aim_trunk_features *t)
{
	free(t->x);
	free(t->feat);
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

/* Per-channel floats from metadata such as "[0.485, 0.456, 0.406]". */
static int meta_floats(const aim_record *r, const char *key, float *v, int n)
{
	const char *s = aim_record_get_meta(r, key);
	json_t *j = s ? json_loads(s, 0, NULL) : NULL;
	int ok = json_is_array(j) && (int)json_array_size(j) == n;
	for (int i = 0; ok && i < n; i++) {
		json_t *e = json_array_get(j, (size_t)i);
		ok = json_is_number(e);
		if (ok)
			v[i] = (float)json_number_value(e);
	}
	json_decref(j);
	return ok ? AIM_OK : AIM_ERR;
}

/* The grid of a sample's K patches: aim.grid, else the model's own. */
static int grid_of(const aim_record *r, const aim_config *c, int64_t K, int *rows, int *cols,
		   const char *what)
{
	const char *gs = aim_record_get_meta(r, "aim.grid");
	json_t *g = gs ? json_loads(gs, 0, NULL) : NULL;
	int ok = 0;
	if (json_is_array(g) && json_array_size(g) == 2) {
		*rows = (int)json_integer_value(json_array_get(g, 0));
		*cols = (int)json_integer_value(json_array_get(g, 1));
		ok = 1;
	} else if (!gs) {
		*rows = c->grid_rows, *cols = c->grid_cols;
		ok = 1;
	}
	json_decref(g);
	if (!ok)
		return aim_error("%s: bad aim.grid metadata '%s'", what, gs);
	if (*rows < 1 || *cols < 1 || (int64_t)*rows * *cols != K)
		return aim_error("%s: a %dx%d grid does not hold the %lld patches of a sample", what,
				 *rows, *cols, (long long)K);
	return AIM_OK;
}

int aim_trunk_features_run(aim_trunk_features *t, const aim_record *r, const char *what,
			   const float **feat, int64_t *Bp, int64_t *Kp)
{
	const aim_config *c = &t->m->cfg;
	const aim_tensor *pt = aim_record_find(r, "patches");
	if (!pt || pt->ndim != 3)
		return aim_error("%s: no 'patches' tensor [B, K, P] (is this a patches stream?)", what);
	int64_t B = pt->shape[0], K = pt->shape[1], P = pt->shape[2];
	if (P != (int64_t)c->channels * c->patch * c->patch)
		return aim_error("%s: patches of %lld values, the model takes %d channels of %dx%d",
				 what, (long long)P, c->channels, c->patch, c->patch);
	int rows = 0, cols = 0;
	if (grid_of(r, c, K, &rows, &cols, what))
		return AIM_ERR;
	size_t n = (size_t)(B * K * P), D = (size_t)c->dim;
	if (n > t->xcap) {
		free(t->x);
		if (!(t->x = malloc(n * sizeof(float))))
			return aim_error("out of memory for %zu patch values", n);
		t->xcap = n;
	}
	if (pt->dtype == AIM_U8) {
		float mean[16], std[16];
		if (c->channels > 16 || meta_floats(r, "aim.mean", mean, c->channels) ||
		    meta_floats(r, "aim.std", std, c->channels))
			return aim_error("%s: U8 patches need aim.mean and aim.std with %d values", what,
					 c->channels);
		const uint8_t *src = pt->data;
		int64_t pp = (int64_t)c->patch * c->patch;
#pragma omp parallel for schedule(static)
		for (int64_t i = 0; i < (int64_t)n; i++) {
			int ch = (int)((i % P) / pp);
			t->x[i] = ((float)src[i] / 255.0f - mean[ch]) / std[ch];
		}
	} else if (pt->dtype == AIM_F32 || pt->dtype == AIM_F16 || pt->dtype == AIM_BF16) {
		aim_to_f32(t->x, pt);
	} else {
		return aim_error("%s: patches of dtype %s", what, aim_dtype_name(pt->dtype));
	}
	const aim_backend *be = t->m->be;
	const float *xin = t->x;
	if (!be->host_memory) { /* a device backend: the patches to its memory */
		size_t nx = (size_t)B * K * pt->shape[2];
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
	aim_forward_opts fo = {.mask = AIM_MASK_NONE, .keep = t->keep};
	if (aim_model_forward(t->m, xin, (int)B, rows, cols, &fo))
		return aim_error_prefix("%s", what);
	size_t per = (size_t)(B * K) * D;
	if (per > t->fcap) {
		free(t->feat);
		if (!(t->feat = malloc(per * sizeof(float))))
			return aim_error("out of memory for features");
		t->fcap = per;
	}
	if (!be->host_memory) { /* average there, bring the average here */
		if (per > t->dfcap) {
			be->free(t->dfeat);
			t->dfcap = 0;
			if (!(t->dfeat = be->alloc(per * sizeof(float))))
				return aim_error("out of %s memory for features", be->name);
			t->dfcap = per;
		}
		be->zero(t->dfeat, per * sizeof(float));
		for (int i = 0; i < t->nl; i++) {
			const float *y = aim_model_block_output(t->m, t->layers[i]);
			if (!y)
				return aim_error("%s: block %d was not kept", what, t->layers[i]);
			be->axpy(t->dfeat, 1.0f, y, per);
		}
		if (t->nl > 1)
			be->scale(t->dfeat, 1.0f / (float)t->nl, t->dfeat, per);
		be->download(t->feat, t->dfeat, per * sizeof(float));
		*feat = t->feat;
		*Bp = B;
		*Kp = K;
		return AIM_OK;
	}
	memset(t->feat, 0, per * sizeof(float));
	for (int i = 0; i < t->nl; i++) {
		const float *y = aim_model_block_output(t->m, t->layers[i]);
		if (!y)
			return aim_error("%s: block %d was not kept", what, t->layers[i]);
		aim_axpy(t->feat, 1.0f, y, per);
	}
	if (t->nl > 1)
		aim_scale(t->feat, 1.0f / (float)t->nl, t->feat, per);
	*feat = t->feat;
	*Bp = B;
	*Kp = K;
	return AIM_OK;
}
