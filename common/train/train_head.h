/* The pixel head of AIM pretraining (the "simple decoder" of the paper):
 *
 *   x0   = h · W_projᵀ + b_proj + pos          h: trunk output [B·K, D]
 *   x_i+1 = x_i + fc2(GELU(fc1(LN_i(x_i))))    N blocks, width W, hidden 4W
 *   pred = LN(x_N) · W_predᵀ + b_pred           [B·K, P], P = C·p·p
 *
 * pos is the fixed 2-D sin-cos table of the patch grid at width W (not
 * trained, not stored). The MLP blocks have no biases and no attention,
 * as in the published AIM v1 recipe. LayerNorm eps is 1e-6.
 *
 * Checkpoint names (prefix "pixel_head.", apart from the probe's "head."):
 *   pixel_head.proj.weight [W, D], pixel_head.proj.bias [W],
 *   pixel_head.blocks.{i}.norm.weight [W], pixel_head.blocks.{i}.norm.bias [W],
 *   pixel_head.blocks.{i}.mlp.fc1.weight [4W, W],
 *   pixel_head.blocks.{i}.mlp.fc2.weight [W, 4W],
 *   pixel_head.norm.weight [W], pixel_head.norm.bias [W],
 *   pixel_head.pred.weight [P, W], pixel_head.pred.bias [P].
 *
 * Two more kinds for the paper's head ablation (train_variant.h):
 *   none         pred = h · W_predᵀ + b_pred, a linear map to pixels
 *                (pixel_head.pred.weight [P, D], pixel_head.pred.bias [P]
 *                only; no positions);
 *   transformer  the MLP head's blocks become pre-norm transformer blocks,
 *                x' = x + proj(attn(qkv(LN₁(x)))), x_i+1 = x' +
 *                fc2(GELU(fc1(LN₂(x')))), no biases, as many attention
 *                heads as the trunk, causal attention over the sequence
 *                (bidirectional under the masked objective); tensors
 *                pixel_head.blocks.{i}.norm_1.{weight,bias},
 *                .attn.qkv.weight [3W, W], .attn.proj.weight [W, W],
 *                .norm_2.{weight,bias}, .mlp.fc1.weight, .mlp.fc2.weight.
 *                It sees whole sequences: its rows are whole images (pos
 *                still gives each row's place). */
#ifndef AIM_TRAIN_HEAD_H
#define AIM_TRAIN_HEAD_H

#include "backend.h"
#include "record.h"
#include "train_rng.h"
#include "train_variant.h"

#define AIM_PIXEL_HEAD_PREFIX "pixel_head."
#define AIM_PIXEL_HEAD_MAX_TENSORS 512

typedef struct {
	const char *suffix; /* name after the prefix, e.g. "proj.weight" (owned) */
	int ndim;
	int64_t shape[2];
	long off, n;        /* position in the arenas */
} aim_head_tensor;

/* The activations one forward keeps for its backward, in the memory of the
 * backend that ran it (capacity for cap_rows rows). */
typedef struct {
	long cap_rows, rows_used;
	float *x;       /* [N+1, M, W] block inputs, x[N] the final residual */
	float *ln;      /* [N, M, W] block norm outputs */
	float *stats;   /* [N+1, 2, M] mean, rstd per norm */
	float *pre;     /* [N, M, 4W] fc1 outputs */
	float *act;     /* [N, M, 4W] GELU outputs */
	float *xn;      /* [M, W] final norm output */
	float *posrows; /* [M, W] position-table rows of the rows */
	/* transformer blocks: [N, M, ·] each, lse [N, M·heads] */
	float *ln2, *stats2, *qkv, *att, *lse, *mid;
	/* Backward scratch. */
	float *dx, *dln, *dact, *dpre, *dmid, *dqkv;
} aim_head_acts;

typedef struct {
	aim_head_kind kind;
	int heads;    /* transformer: attention heads */
	int causal;   /* transformer: causal (1) or bidirectional (0) attention */
	int in_dim;   /* D, the trunk width */
	int width;    /* W */
	int blocks;   /* N */
	int out_dim;  /* P */
	int rows, cols; /* patch grid: K = rows·cols positions */
	float eps;

	/* One arena for the parameters, one for their gradients. */
	float *params, *grads;
	long nparams;
	aim_head_tensor t[AIM_PIXEL_HEAD_MAX_TENSORS];
	int nt;
	float *pos;   /* [K, W] */

	/* Activations of the last forward on the host. */
	aim_head_acts acts;
} aim_pixel_head;

/* Allocate a head; parameters zero until aim_pixel_head_init_random or a
 * load. */
int aim_pixel_head_new(aim_pixel_head *h, int in_dim, int width, int blocks, int out_dim,
		       int rows, int cols);
/* A head of any kind; heads and causal matter to the transformer only. */
int aim_pixel_head_new_kind(aim_pixel_head *h, aim_head_kind kind, int in_dim, int width,
			    int blocks, int heads, int causal, int out_dim, int rows, int cols);
void aim_pixel_head_free(aim_pixel_head *h);

/* Initialise as the recipe does: Xavier-uniform linear weights, zero
 * biases, LayerNorm weight 1 and bias 0. */
void aim_pixel_head_init_random(aim_pixel_head *h, aim_rng *rng);

/* Named access: weight and gradient of a tensor by suffix; NULL if absent. */
float *aim_pixel_head_param(aim_pixel_head *h, const char *suffix, float **grad);

/* The head's arenas as one backend holds them: its parameters, gradients
 * and position table, laid out as the host's params, grads and pos. */
typedef struct {
	const aim_backend *be;
	float *params, *grads, *pos;
} aim_head_mem;

/* Forward and backward through a backend's table (the one implementation;
 * the two below run it on the host arenas with the CPU table). */
int aim_pixel_head_forward_on(const aim_pixel_head *h, const aim_head_mem *m, aim_head_acts *a,
			      float *pred, const float *in, long M, const int *pos);
void aim_pixel_head_backward_on(const aim_pixel_head *h, const aim_head_mem *m,
				aim_head_acts *a, float *din, const float *dpred, const float *in);
void aim_head_acts_free(aim_head_acts *a, const aim_backend *be);

/* Forward over M rows of in [M, D], keeping what the backward needs;
 * pred [M, P]. pos[i] is the grid position (0..K−1) of row i, whose
 * position-table row is added; NULL means rows are whole images in order
 * (row i at position i mod K, M a multiple of K). */
int aim_pixel_head_forward(aim_pixel_head *h, float *pred, const float *in, long M,
			   const int *pos);
/* Backward of the last forward: accumulates parameter gradients into
 * h->grads and the input gradient into din [M, D] (+=). */
void aim_pixel_head_backward(aim_pixel_head *h, float *din, const float *dpred,
			     const float *in);

/* Add every tensor to a checkpoint record (pointing at the arena). */
int aim_pixel_head_to_record(aim_pixel_head *h, aim_record *r);
/* Load every tensor from a record, checking each shape by name. */
int aim_pixel_head_from_record(aim_pixel_head *h, const aim_record *r, const char *what);

/* The shape of the pixel head of this kind in an aim-train checkpoint
 * (blocks, width); 0 if rec has none of that kind. */
int aim_pixel_head_shape_in(const aim_record *rec, aim_head_kind kind, int *blocks, int *dim);

#endif
