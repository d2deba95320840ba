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

	/* The backend the step runs on (aim_trainer_set_backend; the CPU by
	 * default). Scratch above is in its memory, rows and pos on the host.
	 * With a device backend the live state is on the device: `dev`, a
	 * twin of `model`, the head's parameters and gradients (dhead_*), and
	 * the moments (dm, dv), uploaded from the host objects at the first
	 * step; model, head and optim then hold a snapshot that
	 * aim_trainer_sync_host refreshes (before a checkpoint is written). */
	const aim_backend *be;
	aim_model *dev;
	int dev_live;
	float *dx;                          /* a micro-batch's patches */
	float *dhead_params, *dhead_grads, *dhead_pos, *dm, *dv;
	float **dw, **dg;                   /* per trainable tensor, as optim.t */
	aim_head_acts dacts;                /* the head's activations there */
	float *host_pred;                   /* predict: pred rows downloaded */
	/* Several processes on a device backend: gradients are summed among
	 * a node's GPUs in device memory by the backend's group (NCCL), and
	 * between nodes over MPI by each node's local rank 0. Without a group
	 * they go through host memory and MPI. group_note says which, for
	 * the tool to report. */
	int group, group_tried;
	char group_note[300];
} aim_trainer;

/* Register every trainable tensor of model and head with the optimiser and
 * allocate scratch for micro-batches of `micro` images. */
int aim_trainer_init(aim_trainer *t, aim_model *model, int head_blocks, int head_dim,
		     const aim_geometry *g, int norm_pix, uint64_t seed, int micro);
void aim_trainer_free(aim_trainer *t);

/* Run the steps on backend be (from aim_backend_select) instead of the
 * CPU. Call after aim_trainer_init and before the first step; the state
 * loaded into the host objects until the first step is what is uploaded. */
int aim_trainer_set_backend(aim_trainer *t, const aim_backend *be);
/* Copy the live device state (trunk, head, moments) back into model, head
 * and optim; nothing to do on the CPU. */
void aim_trainer_sync_host(aim_trainer *t);

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
