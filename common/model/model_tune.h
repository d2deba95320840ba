/* Adapting the trunk: what the trunk's forward and backward add for LoRA,
 * bottleneck adapters and prompt tokens (full fine-tuning needs nothing
 * here: every trunk weight is trained).
 *
 *   LoRA (peft semantics): a targeted Linear y = x·Wᵀ becomes
 *       y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ        A [r, in], B [out, r]
 *     on the blocks' attn.qkv, attn.proj, mlp.fc1, mlp.fc2 and, on an AIMv2
 *     (SwiGLU) trunk, mlp.fc3 (any subset).
 *     A starts Kaiming-uniform with a = √5 (U(±1/√in), as nn.Linear and
 *     peft's reset_lora_parameters draw it), B at zero: training starts at
 *     the frozen model.
 *   Adapter (Houlsby, after the MLP): the MLP's output m = fc2(MLP(N₂ x'))
 *     becomes m + up(GELU(down(m))) before the block's residual add;
 *     down Linear(D, a) (PyTorch's default init), up Linear(a, D) at zero.
 *   Prompts (VPT): N learned tokens prepended to each sample after the
 *     patch embedding and positions (they carry no position); with deep, the
 *     prompt rows entering every block are replaced by that block's own
 *     tokens. They take part in attention and are dropped before pooling.
 *     Init U(±√(6/(C·p·p + D))) as VPT draws them.
 *
 * Parameters live in one arena with the layout of `info` (names as the
 * adapter files store them, tune_io.h); gradients in a second. The trunk's
 * own weights are left alone; the model computes no gradient for them
 * while m->frozen is set. */
#ifndef AIM_MODEL_TUNE_H
#define AIM_MODEL_TUNE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef enum {
	AIM_TUNE_NONE = 0,
	AIM_TUNE_LORA,
	AIM_TUNE_FULL,
	AIM_TUNE_ADAPTER,
	AIM_TUNE_PROMPT,
} aim_tune_kind;

/* The Linear layers of a block LoRA can target, in this order (fc3: the
 * SwiGLU MLP's second input projection, AIMv2 only). */
enum { AIM_LORA_QKV = 0, AIM_LORA_PROJ, AIM_LORA_FC1, AIM_LORA_FC2, AIM_LORA_FC3, AIM_LORA_NT };

typedef struct {
	aim_tune_kind kind;
	int rank;            /* LoRA r */
	double alpha;        /* LoRA α (scaling α/r, or α/√r with rslora) */
	int rslora;
	unsigned targets;    /* bit t: target t above, per block */
	/* LoRA per block: block_off[l] leaves block l without it; a non-zero
	 * block_mask[l] replaces `targets` there (adapter files may name any
	 * set of modules) */
	unsigned char block_off[AIM_MAX_BLOCKS], block_mask[AIM_MAX_BLOCKS];
	int adapter_dim;     /* adapter bottleneck a */
	int prompts, deep;   /* prompt tokens; deep: every block has its own */
} aim_tune_config;

/* "qkv,proj" (a list of qkv, proj, fc1, fc2, fc3) into target bits;
 * AIM_ERR with a message quoting the bad entry. */
int aim_lora_parse_targets(const char *list, unsigned *bits);
/* The LoRA targets of block l (bits). */
unsigned aim_lora_mask(const aim_tune_config *c, int l);
/* The suffix of target t ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2",
 * "mlp.fc3"). */
const char *aim_lora_target_path(int t);
/* "lora", "full", "adapter", "prompt" (NULL for none). */
const char *aim_tune_kind_name(aim_tune_kind k);

typedef struct {
	float *a, *b;        /* A [r, in], B [out, r]; NULL when not targeted */
} aim_lora_pair;

typedef struct {
	float *down_w, *down_b, *up_w, *up_b; /* [a, D], [a], [D, a], [D] */
} aim_adapter_params;

typedef struct aim_tune {
	aim_tune_config cfg;
	int depth, dim, mlp_hidden, patch_values;
	const aim_backend *be;
	aim_lora_pair (*lora)[AIM_LORA_NT], (*glora)[AIM_LORA_NT]; /* [depth] */
	aim_adapter_params *adp, *gadp;   /* [depth] */
	float *prompt, *gprompt;          /* [deep ? depth : 1, N, D] */
	int nparams;
	/* name, shape and arena offset of each tensor; slot/grad_slot point at
	 * the pointers above */
	aim_param_info *info;
	size_t arena_floats;
	float *arena, *grad_arena;        /* backend memory */
} aim_tune;

/* The tensors for this configuration on a trunk of the given shape
 * (depth, D, MLP width, C·p·p; whether the trunk has fc3 is checked when
 * the tune is attached, aim_model_set_tune); arena allocated on be and initialised as
 * above from seed (drawn on the host: the same numbers on every backend).
 * Full fine-tuning has no tensors here. */
int aim_tune_create(aim_tune **out, const aim_tune_config *c, int depth, int dim,
		    int mlp_hidden, int patch_values, const aim_backend *be, uint64_t seed);
void aim_tune_free(aim_tune *t);
/* Gradient arena (zeroed). */
int aim_tune_alloc_grads(aim_tune *t);
void aim_tune_zero_grads(aim_tune *t);
/* Find a tensor by name (NULL if none). */
aim_param_info *aim_tune_param(const aim_tune *t, const char *name);
/* Trainable values. */
size_t aim_tune_count(const aim_tune *t);
double aim_lora_scale(const aim_tune *t);
/* In/out width of LoRA target t. */
void aim_lora_dims(const aim_tune *t, int target, int *in, int *out);

/* ---- the ops the trunk calls (backend memory) ---- */

/* y[N, out] += s·(x·Aᵀ)·Bᵀ; keeps xa = s·x·Aᵀ [N, r] for the backward. */
void aim_lora_fwd(const aim_backend *be, const aim_lora_pair *p, float s, float *y,
		  const float *x, float *xa, int N, int in, int out, int r);
/* dx += s·(dy·B)·A (when dx), dA += s·(dy·B)ᵀ·x, dB += dyᵀ·xa; dxa [N, r]
 * scratch. */
void aim_lora_bwd(const aim_backend *be, const aim_lora_pair *p, const aim_lora_pair *g,
		  float s, float *dx, const float *dy, const float *x, const float *xa,
		  float *dxa, int N, int in, int out, int r);
/* y[N, D] += m + up(GELU(down(m))); keeps hpre = down(m) [N, a]; z [N, a]
 * scratch. */
void aim_adapter_fwd(const aim_backend *be, const aim_adapter_params *p, float *y,
		     const float *m, float *hpre, float *z, int N, int D, int a);
/* dm = dy + d(adapter)/dm · dy (dm overwritten), parameter gradients
 * added; z, dz [N, a] scratch. */
void aim_adapter_bwd(const aim_backend *be, const aim_adapter_params *p,
		     const aim_adapter_params *g, float *dm, const float *dy, const float *m,
		     const float *hpre, float *z, float *dz, int N, int D, int a);

/* A new adaptation of cfg's kind (seeded by seed) for model's trunk, set on
 * it with the trunk frozen (aim_model_set_tune). */
int aim_tune_attach_new(aim_model *model, const aim_tune_config *cfg, uint64_t seed);

#endif
