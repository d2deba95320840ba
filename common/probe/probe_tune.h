/* Training a probe head jointly with an adaptation of the trunk (LoRA,
 * adapters, prompts: model_tune.h) or with the whole trunk (full
 * fine-tuning), for aim-probe -m MODEL --tune.
 *
 * One step on n labelled images:
 *   features = mean over the chosen blocks of their patch tokens
 *              (prompt tokens dropped), for AIMv2 through the post-trunk
 *              RMSNorm, as the frozen probe sees them (trunk_features.h);
 *   head in training mode (BatchNorm with batch statistics), label-smoothed
 *   cross-entropy averaged over the n images;
 *   backward through the head into the features, (AIMv2) through the
 *   post-trunk norm, then through the trunk (aim_model_backward_at) into
 *   every trainable tensor.
 * The images go through the trunk in micro-batches of `micro` (memory is
 * bounded by the micro-batch; gradients add up, each micro-batch's loss
 * weighted by its share of the n images; the BatchNorm normalises each
 * micro-batch by its own statistics, as PyTorch does under gradient
 * accumulation).
 *
 * AdamW (torch.optim.AdamW arithmetic) on every trainable trunk or
 * adaptation tensor and on the head, one learning-rate schedule. Weight
 * decay on matrices only (no biases, norms, prompt tokens or position
 * tables). Full fine-tuning with layer-wise decay d (BEiT/MAE): block i's
 * tensors learn at lr·d^(depth − i), the patch embedding (its norm and a
 * learned position table included) at lr·d^(depth+1), the post-trunk norm
 * (AIMv2: the features read it; AIM v1: not trained) and the head at lr.
 *
 * Stochastic depth (aim_tune_trainer_set_drop_path, rate p): block l's
 * attention and MLP branches are each dropped for a sample with
 * probability p·l/(depth − 1) and scaled by 1/(1 − that) when kept —
 * timm's DropPath with the linear rule of DeiT and MAE fine-tuning; the
 * draws are a function of (seed, sample number, block, branch), so
 * micro-batches draw what the whole batch would. */
#ifndef AIM_PROBE_TUNE_H
#define AIM_PROBE_TUNE_H

#include <stdint.h>

#include "model.h"
#include "model_tune.h"
#include "probe_data.h"
#include "probe_head.h"
#include "trunk_features.h"

typedef struct {
	float *w, *g, *m, *v;  /* backend memory */
	long n;
	int decay;
	double lr_scale;
	const char *name;
} aim_tune_tensor;

typedef struct {
	aim_model *m;
	aim_head *head;                 /* not owned */
	int layers[AIM_MAX_BLOCKS], nl, top;
	int post_norm;                  /* the features read the post-trunk norm (AIMv2) */
	unsigned char at[AIM_MAX_BLOCKS];
	int micro;
	double smoothing;
	aim_tune_tensor *tt;
	int ntt;
	size_t trainable;               /* trunk-side values trained */
	aim_head_adamw hopt;
	aim_head_cache cache;
	float *hgrad;                   /* head gradient [nparams] */
	/* one micro-batch, host */
	float *feat, *pooled, *xhat, *mean, *rstd, *logits, *dlogits, *dxhat, *dfeat;
	/* backend memory: patches, features, their gradient */
	float *dx, *dfeat_dev;
	/* with post_norm: the blocks' average, its gradient, the norm's
	 * statistics [2, micro-batch tokens] */
	float *avg_dev, *davg_dev, *pstats_dev;
	size_t cap_x, cap_f;
	int64_t cap_b;
	long step;
	/* stochastic depth: rate, seed, images trained so far (numbering the
	 * draws), the factors of one micro-batch (host, [depth, 2, cap_b]) */
	double drop_path;
	uint64_t drop_seed;
	int64_t seen;
	float *drop_factors;
} aim_tune_trainer;

/* m carries its adaptation already (aim_model_set_tune; frozen), or none
 * for full fine-tuning (m->frozen 0). layers: the blocks averaged into the
 * features. layer_decay: full fine-tuning's factor (1: none). */
int aim_tune_trainer_init(aim_tune_trainer *t, aim_model *m, aim_head *h, const int *layers,
			  int nl, int micro, double smoothing, double layer_decay);
void aim_tune_trainer_free(aim_tune_trainer *t);

/* Stochastic depth at rate (0: none; below 1) with draws from seed. Not
 * with bottleneck adapters (their residual is the MLP branch's own). */
int aim_tune_trainer_set_drop_path(aim_tune_trainer *t, double rate, uint64_t seed);

/* The branch factors of samples first .. first+b-1 at rate over depth
 * blocks: out[(l·2 + j)·b + i] for block l, branch j (0 attention, 1 MLP),
 * sample first+i: 0 (dropped) or 1/(1 − rate_l) (kept). */
void aim_drop_path_factors(double rate, int depth, uint64_t seed, int64_t first, int b,
			   float *out);

/* Gradients of the mean loss over n images x [n, rows·cols, P] (host F32),
 * labels y in [0, C). Zeroes the gradients first. Returns the mean loss in
 * *loss, the images ranked right at top-1 in *correct, and the logits
 * [n, C] (training mode) into logits when not NULL. */
int aim_tune_trainer_gradients(aim_tune_trainer *t, const float *x, const int64_t *y, int n,
			       int rows, int cols, double *loss, int64_t *correct, float *logits);
/* AdamW with learning rate lr (times each tensor's scale) and weight
 * decay wd, on the trunk side and the head. */
void aim_tune_trainer_update(aim_tune_trainer *t, double lr, double wd);

/* The head gradient and a named trunk-side gradient (host copies; for
 * tests). */
const float *aim_tune_trainer_head_grad(const aim_tune_trainer *t);

/* One batch of --tune: the labelled images of r (labels[b] >= 0) through
 * the trunk and head, their gradients and one update of both at lr (weight
 * decay wd). *n: how many were trained (0: none labelled, nothing done),
 * *loss their mean loss, *correct their right answers; lab is scratch
 * kept between batches. */
int aim_tune_trainer_batch(aim_tune_trainer *t, aim_trunk_features *tf, const aim_record *r,
			   const char *what, const int64_t *labels, double lr, double wd,
			   aim_labelled *lab, int64_t *n, double *loss, int64_t *correct);

/* --model-out: the model as aim_model_to_record writes it, with head h in
 * place of any head it was loaded with, written to path. */
int aim_head_write_model(aim_model *model, const aim_head *h, const char *path);

#endif
