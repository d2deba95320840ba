/* The AIM trunk of both families, the family being data in aim_config:
 * patch embedding, positions, pre-norm transformer blocks, post-trunk norm.
 * Forward for inference and training, backward for training. Ops are
 * reached through the backend table (backend.h).
 *
 *   x₀      = N_patch(patches · W_pᵀ + b_p) + pos
 *             (a masked token: mask_token + pos; a permuted sequence: each
 *              token with the position of its place, aim_forward_opts)
 *   x'      = xₗ + proj(attn(qkv(N₁(xₗ))))          (qkv bias if the file has one)
 *   xₗ₊₁    = x' + fc2(MLP(N₂(x')))                 (biases where the file has them)
 *   normed  = N_post(x_depth)
 * AIM v1: every N a LayerNorm (eps 1e-6), MLP = GELU(fc1 ·) (erf GELU),
 *         pos = the fixed 2-D sin-cos table of any grid.
 * AIMv2:  every N an RMSNorm (weight only, eps 1e-5), MLP = silu(fc1 ·) ⊙ fc3 ·
 *         (SwiGLU), pos = a learned table [1, N, D] of the training grid
 *         ("preprocessor.pos_embed"; the native checkpoints use sin-cos).
 * Attention is multi-head with scale 1/√hd and one of the masks of ops.h.
 * Every linear layer of a block runs through block_linear() in model.c,
 * one place for adapters to hook.
 *
 * Threads (CPU): an inference batch of several samples is cut into groups
 * of whole samples (at least ~512 tokens each) that go through the whole
 * trunk each on one thread, with single-threaded OpenBLAS — no barrier
 * between ops; a single sample, and training, parallelise inside each op
 * instead (GEMM panels, attention per (sample, head, query block), rows).
 *
 * Memory: parameters live in one arena (sizes table + one allocation, the
 * order of aim_model_param_info) or point straight into an F32 mapping;
 * gradients, when asked for, are a second arena with the same layout;
 * activations are a third, sized for the largest batch seen. */
#ifndef AIM_MODEL_H
#define AIM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "record.h"

#define AIM_MAX_BLOCKS 256

/* The family as data; 0 is AIM v1's choice for each, so a zeroed config is
 * an AIM v1 one. */
typedef enum { AIM_NORM_LAYER = 0, AIM_NORM_RMS } aim_norm_kind;
typedef enum { AIM_MLP_GELU = 0, AIM_MLP_SWIGLU } aim_mlp_kind;
typedef enum { AIM_POS_SINCOS = 0, AIM_POS_LEARNED } aim_pos_kind;

typedef struct {
	int grid_rows, grid_cols; /* the training grid (img_size / patch); any grid runs
				     with sin-cos positions, this one with a learned table */
	int patch, channels;
	int dim, depth, heads, mlp_hidden;
	int proj_bias, mlp_bias;  /* attn.proj / mlp.fc1,fc2(,fc3) biases (published: none) */
	int qkv_bias;             /* attn.qkv bias (published: none) */
	aim_norm_kind norm;
	aim_mlp_kind mlp;
	aim_pos_kind pos;
	float norm_eps;           /* 0: the norm's default (LayerNorm 1e-6, RMSNorm 1e-5) */
	int nprobe;               /* probe layers (0-based blocks) */
	int probe_layers[AIM_MAX_BLOCKS];
	int num_classes;          /* of the published head (0: unknown) */
} aim_config;

/* Published shapes. AIM v1 (patch 14, 224 px, 3 channels, mlp ratio 4, no
 * biases, probe layers: the last 6, num_classes 1000): "aim-600M" (1536 / 24
 * blocks / 12 heads), "aim-1B" (2048/24/16), "aim-3B" (3072/24/24),
 * "aim-7B" (4096/32/32). AIMv2 (patch 14, RMSNorm, SwiGLU, head dim 128,
 * learned positions, no biases, probe layers: the last block, no head):
 * "aimv2-large-patch14-R" (1024/24/8, SwiGLU 2816), "aimv2-huge-…"
 * (1536/24/12, 4096), "aimv2-1B-…" (2048/24/16, 5632), "aimv2-3B-…"
 * (3072/24/24, 8192), R = 224, 336 or 448; "aimv2-large-patch14-native"
 * (sin-cos positions, any grid; 224 px nominal). The names are matched
 * without case, '_' standing for '-' (timm spells them so). Returns AIM_ERR
 * for an unknown name. */
int aim_config_preset(aim_config *c, const char *arch);
/* The norm's epsilon (norm_eps, or the family default). */
float aim_config_eps(const aim_config *c);
/* "aim-v1" or "aimv2": the family name the tools print. */
const char *aim_config_family(const aim_config *c);
/* The "best" probe layers of a published shape (LAYERS_BEST of the
 * release): 600M and 7B 14–19, 1B and 3B 12–17. Returns the count (6) or
 * AIM_ERR when the shape is not a published one. */
int aim_config_best_layers(const aim_config *c, int *layers);
/* A --layers value into block indices: NULL (the model's probe layers),
 * "last" (the last 6), "best" (the published best 6), "all", or a comma
 * list of blocks and ranges ("3", "0,4", "12-17"). Returns the count, or
 * AIM_ERR with a message that quotes the value. */
int aim_config_parse_layers(const aim_config *c, const char *spec, int *layers);
/* Parse the JSON architecture (aim.config metadata or an AIM v1 Hugging
 * Face config.json): img_size (int or [h, w]), patch_size, embed_dim,
 * num_blocks, num_heads, num_channels (3), probe_layers (count of last
 * blocks, or list; 6), num_classes (1000), and optionally mlp_hidden_dim
 * or mlp_ratio (4), use_bias (false), qkv_bias (false), and the family:
 * norm ("layernorm" | "rmsnorm"), mlp ("gelu" | "swiglu"), pos_embed
 * ("sincos" | "learned"), norm_eps. Missing required keys are errors.
 * (The AIMv2 config.json layouts are read by the loader, model_load.c.) */
int aim_config_from_json(aim_config *c, const char *json, const char *what);
/* The same keys as JSON (malloc'd string). */
char *aim_config_to_json(const aim_config *c);
/* Consistency (dim % heads, dim % 4, ranges); errors say which field. */
int aim_config_check(const aim_config *c);

/* One parameter tensor: its published name, shape and place in the arena. */
typedef struct {
	char name[64];
	int ndim;
	int64_t shape[4];
	size_t numel, offset;   /* in floats, within the arena */
	float **slot;           /* where the model keeps the pointer to it */
	float **grad_slot;      /* where the model keeps the pointer to its gradient */
} aim_param_info;

/* Norm biases (the *_b of norms) exist for LayerNorm only; fc3 for SwiGLU
 * only; pos_embed for a learned table only. Absent ones stay NULL. */
typedef struct {
	float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b, *ln2_w, *ln2_b;
	float *fc1_w, *fc1_b, *fc2_w, *fc2_b, *fc3_w, *fc3_b;
} aim_block_params;

typedef struct {
	float *patch_w, *patch_b, *patch_ln_w, *patch_ln_b;
	float *pos_embed;         /* [grid_rows·grid_cols, D] */
	aim_block_params *blocks; /* [depth] */
	float *post_w, *post_b;
} aim_params;

/* Options of one forward pass. */
typedef struct {
	aim_mask_kind mask;        /* AIM_MASK_NONE for inference */
	const int *prefix;         /* [B] prefix lengths for AIM_MASK_PREFIX */
	int train;                 /* keep what aim_model_backward needs */
	const unsigned char *keep; /* inference: [depth] flags of block outputs to
				      keep (NULL: the last block only); blocks after
				      the last kept one are not run */
	int post_norm;             /* also compute the post-trunk norm (runs every block) */
	/* The sequence's order (host, [rows·cols]): token t of every sample is
	 * the patch of grid place order[t] (raster index) and gets that place's
	 * sin-cos row. NULL: raster, token t at place t. */
	const int *order;
	/* Masked tokens: rows b·K + t (host, [nmasked]) whose embedding
	 * LN_patch(patch·W_pᵀ + b_p) is replaced by mask_token [D] (backend
	 * memory) before the position is added. In training, backward adds
	 * dL/dmask_token into mask_token_grad [D]. */
	const int *masked_rows;
	long nmasked;
	const float *mask_token;
	float *mask_token_grad;
	int train_blocks;          /* training: run (and keep) blocks 0..n-1 only (0: all) */
	/* Stochastic depth (training): host [depth, 2, B], the factor of block
	 * l's attention branch (l·2B + b) and MLP branch (l·2B + B + b) for
	 * sample b — 0 for a dropped branch, 1/keep for a kept one. NULL: every
	 * branch whole. */
	const float *branch_scale;
} aim_forward_opts;

typedef struct aim_model aim_model;
struct aim_model {
	aim_config cfg;
	const aim_backend *be;
	aim_params p, g;            /* parameters and their gradients */
	int nparams;
	aim_param_info *info;       /* [nparams] */
	size_t arena_floats;        /* total parameter floats */
	float *arena;               /* owned parameter arena (NULL while all point
				       into a mapping) */
	float *grad_arena;          /* NULL until aim_model_alloc_grads */
	void *acts;                 /* activation arena (private layout) */
	size_t acts_bytes;
	struct aim_model_state *st; /* forward state (private) */
	/* Adaptation (model_tune.h): LoRA, adapters or prompts the forward and
	 * backward apply (NULL: none; owned); frozen: the backward computes no
	 * gradient for the trunk's own weights (only for its inputs and tune). */
	struct aim_tune *tune;
	int frozen;
	/* What the loader keeps alive: the mapping the parameters may point
	 * into, and the probe head's tensors (F32, "head.*") if any. */
	void *mapping;
	void (*mapping_free)(void *mapping);
	aim_record head;
	int has_head;
	char *source;               /* the file the weights came from */
};

/* A model with the given architecture on a backend (NULL: CPU) and no
 * parameter storage yet; aim_model_alloc_params() or the loader provides
 * it. */
int aim_model_create(aim_model **out, const aim_config *c, const aim_backend *be);
void aim_model_free(aim_model *m);
/* The parameter arena (zero-filled) with every pointer set into it. If some
 * pointers already point elsewhere (a mapping), their values are copied in. */
int aim_model_alloc_params(aim_model *m);
/* Initialise the parameters as the published code does: patch kernel
 * Xavier-uniform over [D, C·p·p], Linear weights Xavier-uniform (bias 0),
 * norms weight 1 bias 0, a learned position table normal with std 0.02.
 * Deterministic in seed (the same numbers on
 * every backend: drawn on the host, then uploaded). Allocates the arena. */
int aim_model_init_params(aim_model *m, uint64_t seed);
/* Gradient arena with the parameters' layout; zeroes it. */
int aim_model_alloc_grads(aim_model *m);
void aim_model_zero_grads(aim_model *m);
/* Find a parameter by its published name (NULL if none). */
const aim_param_info *aim_model_param(const aim_model *m, const char *name);

/* Forward over patches [B, rows·cols, C·p·p] (F32, in backend memory, left
 * untouched and kept by pointer until aim_model_backward in training). */
int aim_model_forward(aim_model *m, const float *patches, int B, int rows, int cols,
		      const aim_forward_opts *o);
/* Attach adaptation tensors (the model owns them from now on; NULL
 * detaches and frees) and whether the trunk's weights are frozen. Shapes
 * must match the trunk. */
int aim_model_set_tune(aim_model *m, struct aim_tune *t, int frozen);
/* Prompt tokens in front of each sample's patch tokens (0 without prompt
 * tuning). */
int aim_model_prompt_tokens(const aim_model *m);
/* Output of block i [B, prompts + K, D] of the last forward (kept or
 * training), prompt tokens first in each sample; NULL when it was not kept. */
const float *aim_model_block_output(const aim_model *m, int block);
/* dst [B, K, D] += s · the patch tokens of block's output (prompt tokens
 * dropped); backend memory. AIM_ERR when the block was not kept. */
int aim_model_patch_tokens_add(const aim_model *m, int block, float s, float *dst);
/* Post-trunk norm of the last block [B, K, D] (forward with post_norm). */
const float *aim_model_normed(const aim_model *m);
/* y[n, D] = post-trunk norm of x[n, D] (y may alias x). */
void aim_model_post_norm(const aim_model *m, float *y, const float *x, int64_t n);
/* The same for training, keeping the norm's statistics in stats [2n]
 * (backend memory), and its backward: dx[n, D] += dL/dx for dy = dL/dy,
 * the norm's weight (and bias) gradients added into the model's unless it
 * is frozen. y must not alias x. */
void aim_model_post_norm_train(const aim_model *m, float *y, float *stats, const float *x,
			       int64_t n);
void aim_model_post_norm_bwd(aim_model *m, float *dx, const float *dy, const float *x,
			     const float *stats, int64_t n);

/* Backward of the last training forward. dy [B, K, D] is dL/d(output of the
 * last block), or dL/d(post-trunk norm output) when dy_is_normed. Parameter
 * gradients are ADDED into the gradient arena. */
int aim_model_backward(aim_model *m, const float *dy, int dy_is_normed);
/* Backward from the patch tokens of several block outputs: scale·dy
 * ([B, K, D], patch tokens only; prompt tokens get no gradient from
 * outside) is added at the output of every block l with at[l] set, as
 * for features averaged over those blocks. Gradients are ADDED into the
 * model's (unless frozen) and the tune's gradient arenas. */
int aim_model_backward_at(aim_model *m, const float *dy, const unsigned char *at, float scale);

/* Forward FLOPs of one image on a rows × cols grid (multiply-add = 2). */
double aim_model_flops(const aim_config *c, int rows, int cols);

#endif
