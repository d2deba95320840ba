/* One pretraining step of trunk + pixel head, across micro-batches and
 * processes, for any variant of train_variant.h:
 *
 *   0. with an order other than raster, permute each image's patches into
 *      the order (the targets are the permuted patches: step t predicts
 *      step t+1);
 *   1. draw each image's prefix length (prefix attention) or masked places
 *      (masked objective) from its global sample index;
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
#include "train_variant.h"

#define AIM_MASK_TOKEN_NAME "mask_token"

typedef struct {
	aim_model *model;
	aim_pixel_head head;
	aim_optim optim;
	aim_geometry geom;
	int norm_pix;
	uint64_t seed;
	int micro;          /* images per micro-batch */
	aim_variant v;
	int *order;         /* [K] grid place of each step; NULL for raster */
	float *xperm;       /* host [micro, K, P]: a micro-batch in the order */
	/* masked objective: the learned mask token [D] and its gradient
	 * (host; dmtok, dmtok_g on a device), and per-micro-batch scratch */
	float *mtok, *mtok_g, *dmtok, *dmtok_g;
	int *mrows, *trows, *mscratch;
	unsigned char *mflags;
	float *pred_all, *dpred_all; /* transformer head: every row's prediction */
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
/* The same for a variant (aim_trainer_init: aim_variant_default()). The
 * mask token, when the objective has one, is registered after the head as
 * "mask_token" (no weight decay) and starts at
 * aim_trainer_init_mask_token's values, or zero. */
int aim_trainer_init_variant(aim_trainer *t, aim_model *model, const aim_variant *v,
			     int head_blocks, int head_dim, const aim_geometry *g, int norm_pix,
			     uint64_t seed, int micro);
/* The mask token's initial values: N(0, 0.02²) by Box–Muller from stream
 * AIM_RNG_INIT of the seed, words from 2³¹ on (apart from every other
 * draw), as MAE initialises its mask token. */
void aim_trainer_init_mask_token(aim_trainer *t);
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
/* The same, and the loss of each of nchunks equal parts of the sequence in
 * prediction order: chunk c holds the patches predicted at steps s with
 * ⌊s·nchunks/K⌋ = c (s = 1..K−1 along the order; the masked objective:
 * the masked places, in raster order); chunk_loss[c] is the mean loss of
 * the patches it holds over the n images (NaN when it holds none). */
int aim_trainer_eval_chunks(aim_trainer *t, const float *x, int n, int nchunks, double *loss,
			    double *chunk_loss);

/* Predictions for n images x [n, K, P] (raster places), at prefix length S
 * (the masked objective: the validation masks), laid out by place:
 * pred [n, K, P] holds at place q the prediction of the patch at q, in the
 * loss's target space; given [n·K] is 1 at the places the model was given
 * (the prefix, or the unmasked places), where pred is zero. */
int aim_trainer_predict(aim_trainer *t, const float *x, int n, int S, float *pred,
			unsigned char *given);

#endif
