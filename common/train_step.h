/* One pretraining step of trunk + pixel head, across micro-batches and
 * processes:
 *
 *   1. draw each image's prefix length from its global sample index;
 *   2. count the predicted patches of the whole global batch (all-reduce),
 *      which is the loss's denominator on every rank and micro-batch;
 *   3. per micro-batch: trunk forward with the prefix-causal mask, pixel
 *      head, loss, and both backwards, gradients accumulating;
 *   4. all-reduce gradients and loss; clip the global norm; AdamW.
 * Because of 1 and 2, one process with batch n·B, n ranks with batch B,
 * and any --accum split compute the same update up to float summation
 * order. */
#ifndef AIM_TRAIN_STEP_H
#define AIM_TRAIN_STEP_H

#include <stdint.h>

#include "model.h"
#include "train_data.h"
#include "train_head.h"
#include "train_optim.h"

typedef struct {
	aim_model *model;
	aim_pixel_head head;
	aim_optim optim;
	aim_geometry geom;
	int norm_pix;
	uint64_t seed;
	int micro;          /* images per micro-batch */
	/* Scratch for one micro-batch: only the rows that predict a patch
	 * outside the prefix (about half) go through the head. */
	float *target, *pred, *dpred, *hin, *dhin, *dnormed;
	int *rows, *pos;
	long cap_images;
} aim_trainer;

/* Register every trainable tensor of model and head with the optimiser and
 * allocate scratch for micro-batches of `micro` images. */
int aim_trainer_init(aim_trainer *t, aim_model *model, int head_blocks, int head_dim,
		     const aim_geometry *g, int norm_pix, uint64_t seed, int micro);
void aim_trainer_free(aim_trainer *t);

/* Gradients of one step on this rank's B images x [B, K, P] with global
 * indices gidx; returns the loss of the global batch in *loss. Leaves the
 * all-reduced gradients in the arenas (nothing applied yet). */
int aim_trainer_gradients(aim_trainer *t, const float *x, const uint64_t *gidx, int B,
			  double *loss);
/* Clip and apply AdamW for update number step (0-based); returns the
 * gradient norm before clipping in *grad_norm. */
void aim_trainer_update(aim_trainer *t, double lr, double clip, long step, double *grad_norm);

/* Mean loss of n images (prefix lengths from the validation stream of the
 * seed, keyed by the image's position in the set); no gradients. */
int aim_trainer_eval(aim_trainer *t, const float *x, int n, double *loss);

/* Next-patch predictions for n images at prefix length S: pred [n, K, P]
 * (position k predicts patch k+1, in the loss's target space). */
int aim_trainer_predict(aim_trainer *t, const float *x, int n, int S, float *pred);

#endif
