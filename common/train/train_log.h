/* What a training run leaves beside its checkpoints for people to read:
 * RUNDIR/log.csv (one row per step: step, loss, lr, grad_norm,
 * images_per_s, val_loss — empty when not measured at that step) and
 * RUNDIR/loss.png, the loss curve drawn from it. A resumed run keeps the
 * rows up to its checkpoint's step and drops any later ones (written by
 * the interrupted run after its last checkpoint), so the log describes one
 * history. */
#ifndef AIM_TRAIN_LOG_H
#define AIM_TRAIN_LOG_H

#include <stdio.h>

typedef struct {
	FILE *fp;
	char *path;
	long n, cap;
	double *step, *loss, *val;
} aim_trainlog;

/* Open RUNDIR/log.csv: new (keep_upto < 0: any old file is replaced) or
 * continued after step keep_upto. */
int aim_trainlog_open(aim_trainlog *l, const char *rundir, long keep_upto);
/* Append one row (val_loss NaN: not measured) and flush it. */
int aim_trainlog_row(aim_trainlog *l, long step, double loss, double lr, double grad_norm,
		     double images_per_s, double val_loss);
/* Draw the loss (and validation loss) against the step into path. */
int aim_trainlog_plot(const aim_trainlog *l, const char *path);
void aim_trainlog_close(aim_trainlog *l);

/* A time left for the progress line: "1h05m", "4m30s", or "?" when not
 * known. */
void aim_fmt_eta(char *buf, size_t n, double s);

#endif
