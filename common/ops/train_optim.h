/* The optimiser side of pretraining: the list of trainable tensors, the
 * global gradient norm and its clipping, AdamW with fp32 moments, and the
 * learning-rate schedule.
 *
 * AdamW follows torch.optim.AdamW step for step (decoupled weight decay
 * applied first, bias-corrected moments, eps added after the square root)
 * so a PyTorch reference reproduces an update to rounding. Which tensors
 * decay follows the published recipe: none whose name contains "bias",
 * "norm" or "pos_embed". */
#ifndef AIM_TRAIN_OPTIM_H
#define AIM_TRAIN_OPTIM_H

#include <stdint.h>

typedef struct {
	char *name;     /* checkpoint name (owned) */
	float *w, *g;   /* weights and their gradient (not owned) */
	long n;         /* elements */
	int decay;      /* weight decay applies */
	long off;       /* offset of its moments in m, v */
} aim_trainable;

typedef struct {
	aim_trainable *t;
	int n, cap;
	long total;     /* elements over all tensors */
	float *m, *v;   /* first and second moments, `total` each */
	double beta1, beta2, eps, weight_decay;
} aim_optim;

void aim_optim_init(aim_optim *o);
void aim_optim_free(aim_optim *o);
/* Register a tensor; decay < 0 chooses by name (aim_decays). */
int aim_optim_add(aim_optim *o, const char *name, float *w, float *g, long n, int decay);
/* Allocate zeroed moments once every tensor is registered. */
int aim_optim_alloc(aim_optim *o);
/* 1 if the recipe decays a tensor of this name. */
int aim_decays(const char *name);
aim_trainable *aim_optim_find(const aim_optim *o, const char *name);

/* Zero every gradient. */
void aim_optim_zero_grad(aim_optim *o);
/* Global L2 norm of all gradients, summed in a fixed order (so it is the
 * same bit for bit on every run with the same thread count). */
double aim_grad_norm(const aim_optim *o);
/* Multiply every gradient by s. */
void aim_grad_scale(aim_optim *o, float s);
/* The factor that clips a gradient of this norm to max_norm, as
 * torch.nn.utils.clip_grad_norm_ computes it: max/(norm + 1e-6) when that
 * is below 1, else 1 (and 1 when max_norm <= 0: no clipping). */
float aim_clip_coef(double norm, double max_norm);

/* Clip to max_norm as torch.nn.utils.clip_grad_norm_ does (scale by
 * max/(norm + 1e-6) when that is below 1; max_norm <= 0: no clipping).
 * Returns the norm before clipping. */
double aim_grad_clip(aim_optim *o, double max_norm);

/* Sum of squares of x[0..n) in double, in fixed chunks added in order
 * (the same bits for any thread count). */
double aim_sumsq(const float *x, long n);

/* One AdamW update of one tensor (torch.optim.AdamW arithmetic); step is
 * 1-based (bias correction uses beta^step); decay: weight decay applies.
 * The per-tensor form is what a backend table carries. */
void aim_adamw_tensor(float *w, float *m, float *v, const float *g, long n, double lr,
		      double beta1, double beta2, double eps, double weight_decay, int decay,
		      long step);
/* One AdamW update of every registered tensor. */
void aim_adamw_step(aim_optim *o, double lr, long step);

/* Linear warmup then cosine decay. The update number t (0-based) uses
 *   lr·(t+1)/warmup                                    for t < warmup
 *   min_lr + ½(lr − min_lr)(1 + cos(π (t−warmup)/(total−warmup)))  after. */
typedef struct {
	double lr, min_lr;
	long warmup, total;
} aim_schedule;
double aim_schedule_lr(const aim_schedule *s, long t);

#endif
