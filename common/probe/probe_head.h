/* Probe heads on frozen features: the attentive head of AIM v1 and a linear
 * head on mean-pooled features. Forward and backward side by side, the
 * BatchNorm with running statistics, AdamW for the head's parameters and a
 * label-smoothed cross-entropy.
 *
 * Attentive head (published AttentionPoolingClassifier, AIM v1):
 *   x̂      = BatchNorm1d(affine=False, eps 1e-6) over D, every token a sample
 *            (train: batch statistics over B·K tokens, biased variance;
 *             eval: running statistics; running_var keeps the unbiased one,
 *             momentum 0.1 as in PyTorch)
 *   q      = cls_token [Q, D] cut into H heads of hd = D/H (no q projection)
 *   k, v   = x̂ · W_kᵀ, x̂ · W_vᵀ (Linear(D, D), no bias)
 *   a_qh   = softmax_i( q_qh · k_ih / √hd )        over the K tokens
 *   o_qh   = Σ_i a_qhi v_ih                         [hd] per head, concat → [D]
 *   z      = mean over the Q queries of o_q         [D]   ("pooled")
 *   logits = z · W_linᵀ (+ b_lin when present)      [C]
 * Computed the cheap way: q·(W_k x) = (W_kᵀ q)·x, so the keys reduce to one
 * D-vector per (query, head), and W_v is applied after pooling:
 * o_qh = W_v,h (Σ_i a_qhi x̂_i). Same numbers, O(B·K·D·Q·H + B·Q·D²).
 * At inference the BatchNorm is folded in as well (the key vectors scaled
 * by 1/σ, the pooled tokens centred afterwards): x̂ is never written.
 *
 * Linear head: z = BatchNorm1d(affine=False)(mean over K of x), then linear.
 * (For pooled input [B, D], K = 1.)
 *
 * Tensor names (published AIM v1 names, so published heads load as they are):
 *   head.bn.running_mean [D], head.bn.running_var [D],
 *   head.bn.num_batches_tracked (I64 scalar, written; optional on load),
 *   head.cls_token [1, Q, D], head.k.weight [D, D], head.v.weight [D, D]
 *   (attentive only), head.linear.weight [C, D], head.linear.bias [C]
 *   (optional: the published heads have none; our heads write one only when
 *   the head was made with linear_bias).
 * Metadata "aim.head": JSON {"probe":"attentive"|"linear","dim":D,
 *   "classes":C,"heads":H,"queries":Q}. */
#ifndef AIM_PROBE_HEAD_H
#define AIM_PROBE_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

typedef enum { AIM_PROBE_ATTENTIVE = 0, AIM_PROBE_LINEAR = 1 } aim_probe_kind;

typedef struct {
	aim_probe_kind kind;
	int dim;          /* D */
	int classes;      /* C */
	int heads;        /* H (attentive; D % H == 0) */
	int queries;      /* Q (attentive) */
	int linear_bias;  /* head.linear.bias present */
	float bn_eps;     /* 1e-6 as published */
	float bn_momentum;/* 0.1 as PyTorch */
} aim_head_config;

/* Attention heads of an attentive probe over D-wide features whose model
 * is not known (features another tool wrote, without aim.config): D/128
 * when 128 divides D (AIM v1's head width), else the most heads at least
 * 64 wide that divide D (768 -> 6, 1000 -> 10, 200 -> 2), 1 below 128. */
int aim_head_default_heads(int D);

/* Fill defaults: attentive, 1 query, no linear bias, eps 1e-6, momentum 0.1. */
void aim_head_config_default(aim_head_config *c, aim_probe_kind kind, int dim,
			     int classes, int heads);

/* The trainable parameters live in one arena (`params`, `nparams` floats) in
 * this order: cls_token [Q·D], W_k [D·D], W_v [D·D] (attentive only),
 * W_lin [C·D], b_lin [C] (when linear_bias). Gradients and AdamW moments use
 * the same layout, so one pointer offset finds any of them. */
typedef struct {
	aim_head_config cfg;
	float *running_mean, *running_var; /* [D] each (own allocation) */
	int64_t batches_tracked;
	float *params;
	size_t nparams;
	float *cls_token, *wk, *wv, *wlin, *blin; /* point into params (NULL if absent) */
} aim_head;

/* Allocate and initialise: cls_token ~ N(0, 0.02²), W_k, W_v, W_lin ~
 * U(±1/√D) (PyTorch's Linear default), b_lin ~ U(±1/√D), running mean 0,
 * running var 1. Deterministic in seed. */
int aim_head_init(aim_head *h, const aim_head_config *cfg, uint64_t seed);
void aim_head_free(aim_head *h);
/* Deep copy (for keeping the best of several heads). */
int aim_head_copy(aim_head *dst, const aim_head *src);

/* Load from a record holding the names above (the head file, or a model
 * file carrying its head). The kind follows from the tensors present (head.k
 * → attentive). heads: taken from "aim.head" metadata if present, else
 * heads_hint (> 0), else D/128 when D is a multiple of 128 (every published
 * AIM v1 model uses 128-wide heads), else an error asking for it.
 * Shapes are checked by name; errors name `what` and the tensor. */
int aim_head_load(aim_head *h, const aim_record *r, int heads_hint, const char *what);
/* Add the tensors (F32) and "aim.head" metadata to r. The tensors point into
 * h (aim_record_add_ref); h must outlive r's use. */
int aim_head_to_record(const aim_head *h, aim_record *r);

/* Inference (BatchNorm with running statistics). x [B, K, D]. Writes pooled
 * [B, D] (z above; NULL if not wanted) and logits [B, C] (NULL if not
 * wanted). OpenMP-parallel over the batch. Returns AIM_OK or AIM_ERR. */
int aim_head_forward(const aim_head *h, const float *x, int64_t B, int64_t K,
		     float *pooled, float *logits);

/* ---- training --------------------------------------------------------- */

/* BatchNorm in training mode over M rows of D: xhat = (x − μ)/√(σ²+eps)
 * with batch statistics (biased variance); then running statistics are
 * updated as PyTorch does (running_var with the unbiased variance).
 * mean/rstd [D] keep the statistics (for the backward). xhat may alias x. */
void aim_head_bn_train_fwd(aim_head *h, float *xhat, float *mean, float *rstd,
			   const float *x, int64_t M);
/* dx += BatchNorm backward (affine=False) from dxhat. */
void aim_head_bn_bwd(float *dx, const float *dxhat, const float *xhat,
		     const float *rstd, int64_t M, int D);
/* Same transform with the running statistics (eval mode). */
void aim_head_bn_eval_fwd(const aim_head *h, float *xhat, const float *x, int64_t M);

/* Activations kept between forward and backward for one batch. */
typedef struct {
	int64_t B, K, cap_bk, cap_b;
	float *keyvec;  /* [Q·H, D]  scaled (W_k,hᵀ q_qh)/√hd */
	float *attn;    /* [Q·H, B·K] softmax weights (row qh: sample b at b·K) */
	float *pool;    /* [B, Q·H, D] Σ_i a x̂_i per (query, head) */
	float *z;       /* [B, D] pooled (mean over queries of W_v outputs) */
} aim_head_cache;
void aim_head_cache_free(aim_head_cache *c);

/* Forward on already-normalised tokens xhat [B, K, D] (from
 * aim_head_bn_train_fwd, shared by several heads trained on the same batch),
 * keeping what the backward needs. */
int aim_head_forward_train(const aim_head *h, aim_head_cache *c, const float *xhat,
			   int64_t B, int64_t K, float *logits);
/* grad (nparams floats, same layout as params) += dL/dparams;
 * dxhat [B, K, D] += dL/dxhat when not NULL. dlogits [B, C]. */
int aim_head_backward(const aim_head *h, const aim_head_cache *c, const float *xhat,
		      const float *dlogits, float *grad, float *dxhat);

/* Cross-entropy with label smoothing eps (PyTorch's definition:
 * (1−eps)·(−log p_y) + eps·mean_c(−log p_c)), averaged over the rows whose
 * label is in [0, C); rows with other labels are skipped. Writes dlogits
 * [B, C] (gradient of the mean loss; zero rows for skipped ones) when not
 * NULL. Returns the mean loss (NaN if no row counted); *counted gets the
 * number of rows counted. */
double aim_head_cross_entropy(const float *logits, const int64_t *labels, int64_t B, int C,
			 double smoothing, float *dlogits, int64_t *counted);

/* AdamW (decoupled weight decay, PyTorch's formula), bias correction with
 * step t (1-based). Decay applies to the matrices (W_k, W_v, W_lin), not to
 * cls_token or the bias. */
typedef struct {
	float *m, *v; /* [nparams] */
	int64_t t;
	double beta1, beta2, eps;
} aim_head_adamw;
int aim_head_adamw_init(aim_head_adamw *o, const aim_head *h);
void aim_head_adamw_free(aim_head_adamw *o);
void aim_head_adamw_step(aim_head_adamw *o, aim_head *h, const float *grad, double lr,
		    double weight_decay);

/* Learning rate at progress t in [0, total] (any unit: steps or epochs):
 * linear warmup from 0 over `warmup`, then cosine to 0 at `total`. */
double aim_head_lr_schedule(double base, double t, double warmup, double total);

#endif
