/* Several probe heads trained side by side, one per learning rate, on the
 * same batches: what aim-probe runs whatever its input (features files, or
 * patches through a frozen trunk).
 *
 * Every head starts from the same weights (a fair comparison). BatchNorm
 * statistics depend on the data only, so the heads share the normalised
 * batch: the first head keeps the running statistics and
 * aim_probe_trainer_finish copies them to the others. */
#ifndef AIM_PROBE_TRAINER_H
#define AIM_PROBE_TRAINER_H

#include <stdint.h>

#include "probe_head.h"
#include "record.h"
#include "trunk_features.h"

#define AIM_PROBE_MAX_LRS 16

/* The hyper-parameters of a probe run (recorded in the head's aim.probe). */
typedef struct {
	aim_probe_kind kind;
	int queries, heads, linear_bias; /* heads 0: the features' or the model's */
	int epochs, batch, nlr;
	double lr[AIM_PROBE_MAX_LRS], weight_decay, smoothing, warmup; /* warmup in epochs */
	uint64_t seed;
	const char *init;               /* start from this head file (NULL: fresh) */
} aim_probe_hparams;

/* One head and how it did. */
typedef struct {
	aim_head head;
	aim_head_adamw opt;
	aim_head_cache cache;
	double lr;
	double loss_sum;       /* this epoch */
	int64_t correct, seen; /* this epoch (training mode) */
	double val_top1, val_top5, val_loss;
	int64_t val_n;
} aim_probe_trainee;

typedef struct {
	const aim_probe_hparams *hp;
	aim_head_config cfg;
	aim_probe_trainee *t;   /* hp->nlr of them */
	int C;
	int64_t K, D;
	float *xin, *xhat, *mean, *rstd, *logits, *dlogits, *grad;
	int64_t step;
} aim_probe_trainer;

/* The attention heads of an attentive probe: hp->heads, else model_heads
 * (> 0), else the features' aim.config, else (features another tool
 * wrote) aim_head_default_heads(D). */
int aim_probe_heads(const aim_probe_hparams *hp, const aim_record *meta, int64_t D,
		    int model_heads);
/* Class count: `classes` (> 0, --classes), the stream's aim.classes, else
 * max_label + 1 (max_label < 0: unknown). Errors name `what`. */
int aim_probe_class_count(int classes, const aim_record *meta, int64_t max_label,
			  const char *what);

/* Heads for samples of K tokens of width D and C classes; `heads` as
 * aim_probe_heads gave (attentive). hp must outlive the trainer. */
int aim_probe_trainer_init(aim_probe_trainer *tr, const aim_probe_hparams *hp, int64_t K,
			   int64_t D, int C, int heads);
void aim_probe_trainer_start_epoch(aim_probe_trainer *tr);
/* One step of every head on n labelled samples x [n, K, D]; `progress` is
 * the position in the run, in epochs, for the schedule. AIM_ERR on a label
 * outside the classes or a loss that is not finite. */
int aim_probe_trainer_step(aim_probe_trainer *tr, const float *x, const int64_t *y, int64_t n,
			   double progress);
/* The first head's running statistics to the others (end of training). */
void aim_probe_trainer_finish(aim_probe_trainer *tr);
/* Evaluate every head on the labelled stream `path` (features, or patches
 * through tf when tf is not NULL) in eval mode, into val_*. The class list
 * must be the training stream's (train_meta). */
int aim_probe_trainer_validate(aim_probe_trainer *tr, const char *path, aim_trunk_features *tf,
			       const aim_record *train_meta);
/* The index of the best head: highest val top-1 (then lowest val loss)
 * when validated, else the lowest training loss of the last epoch. */
int aim_probe_trainer_best(const aim_probe_trainer *tr, int validated);
/* The hyper-parameters and every head's result as JSON (malloc'd). */
char *aim_probe_trainer_json(const aim_probe_trainer *tr, int best, int validated);
/* The head file's record: trainee best's head, the stream's aim.classes,
 * aim.model, aim.layers, aim.config and aim.pool from meta, and aim.probe
 * (the hyper-parameters, aim_probe_trainer_json). */
int aim_probe_trainer_head_record(const aim_probe_trainer *tr, int best, int validated,
				  const aim_record *meta, aim_record *out);
void aim_probe_trainer_free(aim_probe_trainer *tr);

#endif
