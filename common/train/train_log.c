/* log.csv and loss.png of a training run (train_log.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "err.h"
#include "fileio.h"
#include "train_log.h"

#define HEADER "step,loss,lr,grad_norm,images_per_s,val_loss\n"

static int keep(aim_trainlog *l, double step, double loss, double val)
{
	if (l->n == l->cap) {
		long cap = l->cap ? 2 * l->cap : 1024;
		double *a = realloc(l->step, sizeof(double) * cap);
		double *b = a ? realloc(l->loss, sizeof(double) * cap) : NULL;
		double *c = b ? realloc(l->val, sizeof(double) * cap) : NULL;
		if (a)
			l->step = a;
		if (b)
			l->loss = b;
		if (!c)
			return aim_error("out of memory");
		l->val = c;
		l->cap = cap;
	}
	l->step[l->n] = step;
	l->loss[l->n] = loss;
	l->val[l->n] = val;
	l->n++;
	return 0;
}

int aim_trainlog_open(aim_trainlog *l, const char *rundir, long keep_upto)
{
	memset(l, 0, sizeof *l);
	if (asprintf(&l->path, "%s/log.csv", rundir) < 0)
		return aim_error("out of memory");
	/* Rows to keep from an earlier run, rewritten atomically (a row cut
	 * short by a kill is dropped). */
	char *kept = NULL;
	size_t klen = 0;
	FILE *mem = open_memstream(&kept, &klen);
	if (!mem)
		return aim_error("out of memory");
	fputs(HEADER, mem);
	if (keep_upto >= 0) {
		char *buf = NULL;
		size_t len = 0;
		if (aim_read_file(l->path, &buf, &len) == 0) {
			char *save = NULL;
			int first = 1;
			for (char *line = strtok_r(buf, "\n", &save); line;
			     line = strtok_r(NULL, "\n", &save)) {
				if (first) {
					first = 0;
					continue;
				}
				long step;
				double loss, lr, gn, ips;
				int used = 0;
				if (sscanf(line, "%ld,%lf,%lf,%lf,%lf%n", &step, &loss, &lr, &gn, &ips,
					   &used) != 5 ||
				    (line[used] != ',') || step > keep_upto)
					continue;
				const char *vs = line + used + 1;
				double val = *vs ? atof(vs) : NAN;
				fprintf(mem, "%s\n", line);
				if (keep(l, (double)step, loss, val))
					break;
			}
			free(buf);
		}
		aim_error_clear();
	}
	fclose(mem);
	int rc = aim_write_file_atomic(l->path, kept, klen);
	free(kept);
	if (rc)
		return rc;
	l->fp = fopen(l->path, "a");
	if (!l->fp)
		return aim_error("%s: cannot open for appending: %m", l->path);
	return 0;
}

int aim_trainlog_row(aim_trainlog *l, long step, double loss, double lr, double grad_norm,
		     double images_per_s, double val_loss)
{
	if (isnan(val_loss))
		fprintf(l->fp, "%ld,%.8g,%.8g,%.8g,%.4g,\n", step, loss, lr, grad_norm, images_per_s);
	else
		fprintf(l->fp, "%ld,%.8g,%.8g,%.8g,%.4g,%.8g\n", step, loss, lr, grad_norm,
			images_per_s, val_loss);
	if (fflush(l->fp))
		return aim_error("%s: write failed: %m", l->path);
	return keep(l, (double)step, loss, val_loss);
}

int aim_trainlog_plot(const aim_trainlog *l, const char *path)
{
	if (l->n == 0)
		return 0;
	int any_val = 0;
	for (long i = 0; i < l->n; i++)
		any_val |= !isnan(l->val[i]);
	/* Validation is measured every few steps: join the measurements with
	 * straight lines rather than leaving isolated points between gaps. */
	double *val = malloc(sizeof(double) * l->n);
	if (!val)
		return aim_error("out of memory");
	long prev = -1;
	for (long i = 0; i < l->n; i++) {
		val[i] = NAN;
		if (isnan(l->val[i]))
			continue;
		val[i] = l->val[i];
		for (long j = prev + 1; prev >= 0 && j < i; j++)
			val[j] = l->val[prev] + (l->val[i] - l->val[prev]) * (double)(j - prev) / (double)(i - prev);
		prev = i;
	}
	aim_series s[2] = {{"train loss", l->loss}, {"validation loss", val}};
	int rc = aim_plot_lines(path, "pretraining loss", "step", l->step, (int)l->n, s,
				any_val ? 2 : 1, 0);
	free(val);
	return rc;
}

void aim_trainlog_close(aim_trainlog *l)
{
	if (l->fp)
		fclose(l->fp);
	free(l->path);
	free(l->step);
	free(l->loss);
	free(l->val);
	memset(l, 0, sizeof *l);
}

void aim_fmt_eta(char *buf, size_t n, double s)
{
	if (!(s >= 0) || s > 1e8)
		snprintf(buf, n, "?");
	else if (s >= 3600)
		snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
	else
		snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}
