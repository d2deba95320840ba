/* Training samples from a patches stream (train_data.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "train_data.h"
#include "train_shape.h"

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

/* Make the current record hold an unread image; 1, 0 at end, AIM_ERR. */
static int fill(aim_source *s)
{
	while (s->rec_i >= s->rec_b) {
		int rc = aim_reader_next(s->rd, &s->rec);
		if (rc <= 0)
			return rc;
		snprintf(s->what, sizeof s->what, "%s", aim_reader_where(s->rd));
		aim_geometry g;
		if (aim_patches_geometry(&g, &s->rec, NULL, s->what))
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

/* Whole validation stream in memory. */
float *aim_train_read_val(const char *path, const aim_geometry *g, int *n)
{
	aim_source s;
	const char *paths[1] = {path};
	if (aim_source_open(&s, paths, 1, 0, 1))
		return NULL;
	if (aim_source_geometry(&s) < 0 || (!s.have_geom && aim_error("%s: no images", path)) ||
	    aim_train_check_fit(&(aim_config){.patch = g->patch, .channels = g->channels,
					      .grid_rows = g->rows, .grid_cols = g->cols},
				&s.geom, "the training stream")) {
		aim_source_close(&s);
		return NULL;
	}
	size_t per = (size_t)g->K * g->P;
	int cap = 256, got = 0, rc = 0;
	float *x = malloc(sizeof(float) * per * cap);
	uint64_t *gi = malloc(sizeof(uint64_t) * cap);
	while (x && gi && (rc = aim_source_next(&s, x + per * got, gi, cap - got)) > 0) {
		got += rc;
		if (got == cap) {
			cap *= 2;
			x = realloc(x, sizeof(float) * per * cap);
			gi = realloc(gi, sizeof(uint64_t) * cap);
		}
	}
	aim_source_close(&s);
	if (!x || !gi || rc < 0) {
		if (!x || !gi)
			aim_error("out of memory reading %s", path);
		free(x);
		free(gi);
		return NULL;
	}
	free(gi);
	*n = got;
	return x;
}
