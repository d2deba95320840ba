/* Training samples from a patches stream (train_data.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "train_data.h"

int aim_source_open(aim_source *s, const char *const *paths, int npaths, int rank, int world)
{
	memset(s, 0, sizeof *s);
	aim_record_init(&s->rec);
	s->rank = rank;
	s->world = world;
	s->epoch = -1;
	s->rd = aim_reader_open(paths, npaths);
	if (!s->rd)
		return AIM_ERR;
	return 0;
}

void aim_source_close(aim_source *s)
{
	if (s->rd)
		aim_reader_close(s->rd);
	aim_record_free(&s->rec);
	s->rd = NULL;
}

static int json_floats(const char *text, float *out, int n, const char *key, const char *what)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	if (!j || !json_is_array(j) || (int)json_array_size(j) != n) {
		json_decref(j);
		return aim_error("%s: metadata %s is not a list of %d numbers", what, key, n);
	}
	for (int i = 0; i < n; i++) {
		json_t *v = json_array_get(j, i);
		if (!json_is_number(v)) {
			json_decref(j);
			return aim_error("%s: metadata %s is not a list of %d numbers", what, key, n);
		}
		out[i] = (float)json_number_value(v);
	}
	json_decref(j);
	return 0;
}

static int meta_int(const aim_record *r, const char *key, int *out, const char *what)
{
	const char *v = aim_record_get_meta(r, key);
	char *end;
	if (!v)
		return aim_error("%s: metadata %s is missing", what, key);
	long x = strtol(v, &end, 10);
	if (end == v || *end || x <= 0 || x > 1 << 20)
		return aim_error("%s: metadata %s=\"%s\" is not a positive integer", what, key, v);
	*out = (int)x;
	return 0;
}

int aim_geometry_from_record(aim_geometry *g, const aim_record *r, const char *what)
{
	memset(g, 0, sizeof *g);
	aim_tensor *t = aim_record_find(r, "patches");
	if (!t)
		return aim_error("%s: no \"patches\" tensor (is this a patches stream?)", what);
	if (t->ndim != 3)
		return aim_error("%s: patches must be [B, K, P]", what);
	if (t->dtype != AIM_U8 && t->dtype != AIM_F32 && t->dtype != AIM_F16 && t->dtype != AIM_BF16)
		return aim_error("%s: patches of dtype %s are not supported", what,
				 aim_dtype_name(t->dtype));
	if (meta_int(r, "aim.patch", &g->patch, what) ||
	    meta_int(r, "aim.channels", &g->channels, what))
		return AIM_ERR;
	if (g->channels > AIM_MAX_CHANNELS)
		return aim_error("%s: %d channels (at most %d)", what, g->channels, AIM_MAX_CHANNELS);
	const char *grid = aim_record_get_meta(r, "aim.grid");
	float rc[2];
	if (!grid)
		return aim_error("%s: metadata aim.grid is missing", what);
	if (json_floats(grid, rc, 2, "aim.grid", what))
		return AIM_ERR;
	g->rows = (int)rc[0];
	g->cols = (int)rc[1];
	g->K = g->rows * g->cols;
	g->P = g->channels * g->patch * g->patch;
	if (g->rows <= 0 || g->cols <= 0 || g->K < 2)
		return aim_error("%s: grid %s has fewer than 2 patches", what, grid);
	if (t->shape[1] != g->K || t->shape[2] != g->P)
		return aim_error("%s: patches [%lld, %lld] per image do not match grid %dx%d of "
				 "%d-channel %dx%d patches",
				 what, (long long)t->shape[1], (long long)t->shape[2], g->rows,
				 g->cols, g->channels, g->patch, g->patch);
	for (int c = 0; c < g->channels; c++) {
		g->mean[c] = 0.0f;
		g->std[c] = 1.0f;
	}
	if (t->dtype == AIM_U8) {
		const char *m = aim_record_get_meta(r, "aim.mean");
		const char *sd = aim_record_get_meta(r, "aim.std");
		if (!m || !sd)
			return aim_error("%s: U8 patches need metadata aim.mean and aim.std", what);
		if (json_floats(m, g->mean, g->channels, "aim.mean", what) ||
		    json_floats(sd, g->std, g->channels, "aim.std", what))
			return AIM_ERR;
		for (int c = 0; c < g->channels; c++)
			if (!(g->std[c] > 0))
				return aim_error("%s: aim.std has a non-positive value", what);
	}
	return 0;
}

void aim_patches_to_f32(float *out, const aim_tensor *t, int64_t i, const aim_geometry *g)
{
	size_t n = (size_t)g->K * g->P;
	if (t->dtype != AIM_U8) {
		aim_convert(out, AIM_F32, (const char *)t->data + i * n * aim_dtype_size(t->dtype),
			    t->dtype, n);
		return;
	}
	const uint8_t *u = (const uint8_t *)t->data + i * n;
	const int pp = g->patch * g->patch;
	float scale[AIM_MAX_CHANNELS], shift[AIM_MAX_CHANNELS];
	for (int c = 0; c < g->channels; c++) {
		scale[c] = 1.0f / (255.0f * g->std[c]);
		shift[c] = g->mean[c] / g->std[c];
	}
	for (int k = 0; k < g->K; k++)
		for (int c = 0; c < g->channels; c++) {
			const uint8_t *a = u + (size_t)k * g->P + c * pp;
			float *o = out + (size_t)k * g->P + c * pp;
			for (int j = 0; j < pp; j++)
				o[j] = (float)a[j] * scale[c] - shift[c];
		}
}

/* Make the current record hold an unread image; 1, 0 at end, AIM_ERR. */
static int fill(aim_source *s)
{
	while (s->rec_i >= s->rec_b) {
		int rc = aim_reader_next(s->rd, &s->rec);
		if (rc <= 0)
			return rc;
		snprintf(s->what, sizeof s->what, "%s", aim_reader_where(s->rd));
		aim_geometry g;
		if (aim_geometry_from_record(&g, &s->rec, s->what))
			return AIM_ERR;
		if (!s->have_geom) {
			s->geom = g;
			s->have_geom = 1;
		} else if (g.patch != s->geom.patch || g.rows != s->geom.rows ||
			   g.cols != s->geom.cols || g.channels != s->geom.channels) {
			return aim_error("%s: geometry changed within the stream (patch %d, grid "
					 "%dx%d, %d channels; first record: patch %d, grid %dx%d, "
					 "%d channels)",
					 s->what, g.patch, g.rows, g.cols, g.channels, s->geom.patch,
					 s->geom.rows, s->geom.cols, s->geom.channels);
		} else {
			/* Normalisation constants follow the record. */
			memcpy(s->geom.mean, g.mean, sizeof g.mean);
			memcpy(s->geom.std, g.std, sizeof g.std);
		}
		const char *ep = aim_record_get_meta(&s->rec, "aim.epoch");
		s->epoch = ep ? atoi(ep) : -1;
		s->rec_b = aim_record_find(&s->rec, "patches")->shape[0];
		s->rec_i = 0;
	}
	return 1;
}

int aim_source_geometry(aim_source *s)
{
	if (s->have_geom)
		return 1;
	return fill(s);
}

int aim_source_skip_to(aim_source *s, uint64_t g)
{
	while (s->next_g < g) {
		int rc = fill(s);
		if (rc <= 0)
			return rc;
		int64_t take = s->rec_b - s->rec_i;
		if ((uint64_t)take > g - s->next_g)
			take = (int64_t)(g - s->next_g);
		s->rec_i += take;
		s->next_g += (uint64_t)take;
	}
	return 1;
}

int aim_source_next(aim_source *s, float *x, uint64_t *gidx, int n)
{
	int got = 0;
	while (got < n) {
		int rc = fill(s);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		uint64_t g = s->next_g++;
		int64_t i = s->rec_i++;
		if (g % (uint64_t)s->world != (uint64_t)s->rank)
			continue;
		aim_patches_to_f32(x + (size_t)got * s->geom.K * s->geom.P,
				   aim_record_find(&s->rec, "patches"), i, &s->geom);
		gidx[got++] = g;
	}
	return got;
}
