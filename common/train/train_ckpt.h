/* Pretraining checkpoints: RUNDIR/step-NNNNNNNN.safetensors.
 *
 * One safetensors file holds everything a run needs to continue exactly:
 *   - the trunk under its published names, with metadata aim.config, so
 *     aim-extract loads the file as it is;
 *   - the pixel head under "pixel_head." (train_head.h), and the masked
 *     objective's mask token as "mask_token" [D];
 *   - the AdamW moments under "optim.m.<name>" and "optim.v.<name>" for
 *     every trainable tensor <name>;
 *   - metadata "aim.train" (JSON: step, samples consumed, seed, schedule,
 *     optimiser and head settings; see aim_train_state), and
 *     "aim.train.step" alone for quick reading.
 * The only randomness of a run is counter based (train_rng.h): the seed
 * and the count of samples consumed are its whole RNG state.
 * Files are written to a temporary name and renamed, so a file under its
 * final name is always complete, whenever the process is killed. */
#ifndef AIM_TRAIN_CKPT_H
#define AIM_TRAIN_CKPT_H

#include <stdint.h>

#include "model.h"
#include "record.h"
#include "safetensors.h"
#include "train_head.h"
#include "train_optim.h"
#include "train_variant.h"
#include "trunk_features.h"

#define AIM_OPTIM_M_PREFIX "optim.m."
#define AIM_OPTIM_V_PREFIX "optim.v."

typedef struct {
	long step;            /* updates done */
	uint64_t samples;     /* images consumed from the input (all ranks) */
	uint64_t seed;
	int batch, accum, world; /* per-rank batch, micro-batches, ranks */
	double lr, min_lr, weight_decay, clip, beta1, beta2, eps;
	long warmup, total;   /* schedule */
	int norm_pix;
	int head_blocks, head_dim;
	aim_variant v;        /* order, attention, objective, head (train_variant.h);
				 a checkpoint without them has the defaults */
} aim_train_state;

/* "aim.train" JSON of a state (malloc'd) and back. */
char *aim_train_state_json(const aim_train_state *s);
int aim_train_state_parse(aim_train_state *s, const char *json, const char *what);

/* The order a model file was pretrained in (for probing it with its
 * causal mask kept): order[rows·cols] from the file's aim.train (order and
 * seed) when it is an aim-train checkpoint, else raster. Returns AIM_ERR
 * only for a checkpoint whose aim.train does not parse. */
int aim_ckpt_order(const char *path, int rows, int cols, int *order);
/* The same for the model's own grid, malloc'd into *order. */
int aim_ckpt_model_order(const char *path, const aim_config *c, int **order);
/* Frozen features with the causal mask kept (aim-probe/aim-eval -m --mask
 * causal): t's mask and its order, of the model file at path. */
int aim_trunk_features_causal(aim_trunk_features *t, const char *path);

/* Write RUNDIR/step-NNNNNNNN.safetensors atomically; mask_token [dim] or
 * NULL. */
int aim_ckpt_save(const char *rundir, const aim_model *m, aim_pixel_head *h,
		  const aim_optim *o, const aim_train_state *s, float *mask_token);
/* The mask token of a checkpoint into token [dim]. */
int aim_ckpt_load_mask_token(float *token, int dim, const aim_record *r, const char *what);
/* Newest checkpoint of RUNDIR: 1 and its path, 0 if none, AIM_ERR. */
int aim_ckpt_latest(const char *rundir, char *path, size_t n);
/* --resume RUNDIR: open its newest checkpoint (path, ck) and parse its
 * training state into st; an error when there is none. */
int aim_ckpt_resume(const char *rundir, char *path, size_t n, aim_stfile *ck,
		    aim_train_state *st);

/* Remove what a killed run left half-written in RUNDIR: the temporary
 * files (".NAME.tmpPID") of checkpoints, log.csv and the pictures. Only
 * for a run directory no other process is writing. */
void aim_ckpt_remove_partial(const char *rundir);

/* Copy the trunk parameters from a record by published name, checking
 * every shape. */
int aim_ckpt_load_trunk(aim_model *m, const aim_record *r, const char *what);
/* Copy the moments of every trainable tensor. */
int aim_ckpt_load_moments(aim_optim *o, const aim_record *r, const char *what);

#endif
