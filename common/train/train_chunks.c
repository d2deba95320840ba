/* chunks.csv and chunks.png of a training run (train_chunks.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "err.h"
#include "fileio.h"
#include "train_chunks.h"

static int grow(aim_chunklog *l)
{
	if (l->n < l->cap)
		return 0;
	long cap = l->cap ? 2 * l->cap : 64;
	long *s = realloc(l->step, sizeof(long) * cap);
	if (s)
		l->step = s;
	double *v = s ? realloc(l->loss, sizeof(double) * cap * l->nchunks) : NULL;
	if (!v)
		return aim_error("out of memory");
	l->loss = v;
	l->cap = cap;
	return 0;
}

int aim_chunklog_open(aim_chunklog *l, const char *rundir, int nchunks, long keep_upto)
{
	memset(l, 0, sizeof *l);
	l->nchunks = nchunks;
	if (!(l->dir = strdup(rundir)))
		return aim_error("out of memory");
	if (keep_upto < 0)
		return 0;
	char path[4096], *text = NULL;
	size_t len;
	snprintf(path, sizeof path, "%s/chunks.csv", rundir);
	if (aim_read_file(path, &text, &len)) { /* no earlier validation */
		aim_error_clear();
		return 0;
	}
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *end;
		long step = strtol(line, &end, 10);
		if (end == line || *end != ',' || step > keep_upto)
			continue; /* the header, or past the checkpoint */
		if (grow(l)) {
			free(text);
			return AIM_ERR;
		}
		double *row = l->loss + l->n * nchunks;
		int c = 0;
		for (char *p = end; *p == ',' && c < nchunks; c++)
			row[c] = strtod(p + 1, &p);
		if (c == nchunks)
			l->step[l->n++] = step;
	}
	free(text);
	return 0;
}

/* The first validation and the latest ones, against the chunk. */
static int plot(const aim_chunklog *l, const char *path)
{
	enum { LATEST = 5 };
	double *x = malloc(sizeof(double) * l->nchunks);
	aim_series s[LATEST + 1];
	char labels[LATEST + 1][32];
	if (!x)
		return aim_error("out of memory");
	for (int c = 0; c < l->nchunks; c++)
		x[c] = c + 1;
	int ns = 0;
	long first_latest = l->n - LATEST > 1 ? l->n - LATEST : 1;
	for (long i = 0; i < l->n; i++) {
		if (i != 0 && i < first_latest)
			continue;
		snprintf(labels[ns], sizeof labels[ns], "step %ld", l->step[i]);
		s[ns].label = labels[ns];
		s[ns].y = l->loss + i * l->nchunks;
		ns++;
	}
	int rc = aim_plot_lines(path, "validation loss of each part of the sequence",
				"part of the sequence (prediction order)", x, l->nchunks, s, ns, 0);
	free(x);
	return rc;
}

int aim_chunklog_add(aim_chunklog *l, long step, const double *loss)
{
	if (grow(l))
		return AIM_ERR;
	l->step[l->n] = step;
	memcpy(l->loss + l->n * l->nchunks, loss, sizeof(double) * l->nchunks);
	l->n++;
	size_t cap = 64 + (size_t)l->n * (24 + 20 * (size_t)l->nchunks), at = 0;
	char *text = malloc(cap), path[4096];
	if (!text)
		return aim_error("out of memory");
	at += snprintf(text, cap, "step");
	for (int c = 0; c < l->nchunks; c++)
		at += snprintf(text + at, cap - at, ",chunk_%d", c + 1);
	at += snprintf(text + at, cap - at, "\n");
	for (long i = 0; i < l->n; i++) {
		at += snprintf(text + at, cap - at, "%ld", l->step[i]);
		for (int c = 0; c < l->nchunks; c++)
			at += snprintf(text + at, cap - at, ",%.8g", l->loss[i * l->nchunks + c]);
		at += snprintf(text + at, cap - at, "\n");
	}
	snprintf(path, sizeof path, "%s/chunks.csv", l->dir);
	int rc = aim_write_file_atomic(path, text, at);
	free(text);
	snprintf(path, sizeof path, "%s/chunks.png", l->dir);
	return rc ? rc : plot(l, path);
}

void aim_chunklog_free(aim_chunklog *l)
{
	free(l->dir);
	free(l->step);
	free(l->loss);
	memset(l, 0, sizeof *l);
}
