/* Randomness for pretraining, keyed by position rather than by history.
 *
 * Every random draw of a training run is a pure function of (seed, stream,
 * index): the prefix length of sample g is prefix_len(seed, g, K). A run
 * therefore needs no RNG state beyond its seed and the number of samples
 * consumed, which makes three guarantees cheap: a resumed run draws what an
 * uninterrupted one would have drawn, MPI ranks agree with one process on
 * the prefix of every sample whatever rank reads it, and gradient
 * accumulation chunks draw what one big batch would have. */
#ifndef AIM_TRAIN_RNG_H
#define AIM_TRAIN_RNG_H

#include <stdint.h>

/* Independent streams of one seed. */
enum aim_rng_stream {
	AIM_RNG_PREFIX = 1, /* prefix length of training sample g */
	AIM_RNG_INIT = 2,   /* initial weights */
	AIM_RNG_VAL = 3,    /* prefix length of validation sample g */
	AIM_RNG_ORDER = 4,  /* the fixed random order (train_variant.h) */
	AIM_RNG_MASK = 5,   /* masked places of training sample g */
	AIM_RNG_VAL_MASK = 6, /* masked places of validation sample g */
	AIM_RNG_DROP_PATH = 7, /* stochastic depth of fine-tuning sample g (probe_tune.h) */
};

/* SplitMix64 finaliser: a bijective 64-bit mix. */
uint64_t aim_mix64(uint64_t x);

/* The 64-bit word `index` of stream `stream` of `seed`. */
uint64_t aim_rng_at(uint64_t seed, uint64_t stream, uint64_t index);

/* A uniform integer in [lo, hi] from word `index` (unbiased by rejection,
 * drawing further words as needed). */
int64_t aim_rng_int(uint64_t seed, uint64_t stream, uint64_t index, int64_t lo, int64_t hi);

/* Prefix length of a sample with K patches: uniform in [1, K-1]. */
int aim_prefix_len(uint64_t seed, uint64_t stream, uint64_t sample, int K);

/* A sequential generator (for weight initialisation), also counter based. */
typedef struct {
	uint64_t seed, stream, next;
} aim_rng;
void aim_rng_init(aim_rng *r, uint64_t seed, uint64_t stream);
uint64_t aim_rng_next(aim_rng *r);
/* Uniform float in [0, 1) with 24 random bits. */
float aim_rng_uniformf(aim_rng *r);
/* Fill x[0..n) uniformly in [-a, a). */
void aim_rng_fill_uniform(aim_rng *r, float *x, long n, float a);

#endif
