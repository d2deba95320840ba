/* The pretraining variants of the AIM paper's ablations (its Tables 3–5):
 * the order of the autoregression, the attention of the trunk, the
 * objective, and (train_head.h) the pixel head.
 *
 * Orders: the sequence itself is permuted. aim_patch_order gives, for each
 * step t of the sequence, the grid place (raster index r·cols + c) of the
 * patch the trunk reads at step t; each token keeps the sin-cos position
 * of its place, the output at step t predicts the patch of step t+1, and a
 * prefix of length S is the first S steps. On any grid, R rows × C columns:
 *   raster        t = r·C + c: row by row, each left to right (the default);
 *   spiral        from the centre outwards: the walk that starts at the
 *                 top-left corner, goes down the left column, right along
 *                 the bottom row, up the right column, left along the top
 *                 row, and so on inwards — turning (down → right → up →
 *                 left) whenever the next cell is off the grid or already
 *                 walked — taken backwards, so the sequence starts where the
 *                 walk ends (the centre cell of an odd square grid) and ends
 *                 at the top-left corner;
 *   checkerboard  one colour of the board, then the other: the places with
 *                 r + c even in raster order, then those with r + c odd in
 *                 raster order;
 *   random        one fixed permutation of the seed, the same for every
 *                 image: Fisher–Yates from the identity, for i = K−1 down to
 *                 1 swapping places i and j = aim_rng_int(seed,
 *                 AIM_RNG_ORDER, i, 0, i).
 *
 * Attention: prefix (prefix-causal, prefix length uniform in [1, K−1],
 * loss outside the prefix: the paper's recipe) or causal (every token sees
 * the tokens before it; every patch after the first is predicted).
 *
 * Objective: autoregressive, or masked-image modelling on the same trunk:
 * bidirectional attention, round(R·K) patches of each image (at least 1,
 * at most K−1) replaced by a learned mask token after the patch embedding,
 * and the loss taken on the masked patches, each predicted by the output at
 * its own place. The masked places of training sample g are the first
 * round(R·K) places of a Fisher–Yates shuffle of 0..K−1 whose swap at i
 * (i = K−1 down to 1) is with j = aim_rng_int(seed, AIM_RNG_MASK, g·K + i,
 * 0, i); validation image i draws from AIM_RNG_VAL_MASK. */
#ifndef AIM_TRAIN_VARIANT_H
#define AIM_TRAIN_VARIANT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	AIM_ORDER_RASTER = 0,
	AIM_ORDER_SPIRAL,
	AIM_ORDER_CHECKERBOARD,
	AIM_ORDER_RANDOM,
} aim_order_kind;

typedef enum { AIM_ATTN_PREFIX = 0, AIM_ATTN_CAUSAL } aim_attn_kind;
typedef enum { AIM_OBJ_AUTOREGRESSIVE = 0, AIM_OBJ_MASKED } aim_objective_kind;

/* The pixel head: the paper's MLP (default), a linear map to pixels, or
 * transformer blocks (train_head.h). */
typedef enum { AIM_HEAD_MLP = 0, AIM_HEAD_NONE, AIM_HEAD_TRANSFORMER } aim_head_kind;

typedef struct {
	aim_order_kind order;
	aim_attn_kind attention;
	aim_objective_kind objective;
	double mask_ratio;  /* masked: the share of patches masked */
	aim_head_kind head;
} aim_variant;

/* The paper's recipe: raster, prefix, autoregressive, MLP head. */
aim_variant aim_variant_default(void);

/* Names (as on the command line and in aim.train) and back; the parsers
 * return -1 for an unknown name. */
const char *aim_order_name(aim_order_kind k);
int aim_order_parse(const char *name);
const char *aim_attn_name(aim_attn_kind k);
int aim_attn_parse(const char *name);
const char *aim_objective_name(aim_objective_kind k);
int aim_objective_parse(const char *name);
const char *aim_head_name(aim_head_kind k);
int aim_head_parse(const char *name);

/* A probe's --mask: "none" (bidirectional, 0) or "causal" (1, the mask
 * kept in the model's order); -1 for anything else. */
int aim_probe_mask_parse(const char *name);

/* order[t], t < rows·cols: the grid place read at step t (see above).
 * AIM_ERR only when out of memory. */
int aim_patch_order(int *order, aim_order_kind k, int rows, int cols, uint64_t seed);

/* Masked patches per image of K: round(ratio·K), clamped to [1, K−1]. */
int aim_mask_count(double ratio, int K);
/* flags[K]: 1 at the masked places of sample `sample` of `stream`;
 * scratch holds K ints. */
void aim_mask_places(unsigned char *flags, int *scratch, uint64_t seed, uint64_t stream,
		     uint64_t sample, int K, int count);

/* Option parsers for the tools: --head, --order, --attention and
 * --objective (an unknown name is a usage error, exit 2, listing them). */
aim_head_kind aim_opt_head(const char *arg);
aim_order_kind aim_opt_order(const char *arg);
aim_attn_kind aim_opt_attention(const char *arg);
aim_objective_kind aim_opt_objective(const char *arg);

/* A line naming a variant other than AIM's default (order, attention,
 * objective, head) into buf; 0 (buf untouched) for the default. */
int aim_variant_describe(const aim_variant *v, char *buf, size_t n);

#endif
