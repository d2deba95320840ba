/* What the files of a probe head share among themselves (not an API: the
 * head's interface is probe_head.h). */
#ifndef AIM_PROBE_PARTS_H
#define AIM_PROBE_PARTS_H

#include <stdint.h>

#include "probe_head.h"

/* Loops over fewer elements than this stay on one thread: waking the
 * OpenMP team costs more than the work, and idle workers spinning between
 * regions steal time from the BLAS threads on a busy machine. */
#define AIM_PAR_MIN 65536

/* The attention pooling's activations for a batch of B samples of K tokens. */
int aim_head_cache_reserve(aim_head_cache *c, const aim_head_config *cfg, int64_t B, int64_t K);
/* Normalised tokens xhat [B, K, D] → pooled z [B, D], filling the cache;
 * bn_mean/bn_rstd non-NULL: the tokens are raw and the BatchNorm is folded
 * in (inference). */
int aim_head_attentive_fwd(const aim_head *h, aim_head_cache *c, const float *xhat, int64_t B,
			   int64_t K, float *z, const float *bn_mean, const float *bn_rstd);
/* Backward from dz [B, D]: parameter gradients into grad (the arena's
 * layout), and dxhat when not NULL. */
int aim_head_attentive_bwd(const aim_head *h, const aim_head_cache *c, const float *xhat,
			   const float *dz, float *grad, float *dxhat);

#endif
