/* Counter-based randomness for pretraining (see train_rng.h). */
#include "train_rng.h"

uint64_t aim_mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

uint64_t aim_rng_at(uint64_t seed, uint64_t stream, uint64_t index)
{
	/* Mixing twice keeps nearby (seed, stream, index) triples unrelated. */
	return aim_mix64(aim_mix64(seed ^ aim_mix64(stream)) + index);
}

int64_t aim_rng_int(uint64_t seed, uint64_t stream, uint64_t index, int64_t lo, int64_t hi)
{
	uint64_t range = (uint64_t)(hi - lo) + 1;
	if (range == 0)
		return lo;
	/* Reject the top partial copy of the range; further words come from
	 * the same index under a derived stream so draws stay independent. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % range;
	uint64_t w = aim_rng_at(seed, stream, index);
	for (uint64_t k = 1; w >= limit; k++)
		w = aim_rng_at(seed ^ k, stream, index);
	return lo + (int64_t)(w % range);
}

int aim_prefix_len(uint64_t seed, uint64_t stream, uint64_t sample, int K)
{
	return (int)aim_rng_int(seed, stream, sample, 1, K - 1);
}

void aim_rng_init(aim_rng *r, uint64_t seed, uint64_t stream)
{
	r->seed = seed;
	r->stream = stream;
	r->next = 0;
}

uint64_t aim_rng_next(aim_rng *r)
{
	return aim_rng_at(r->seed, r->stream, r->next++);
}

float aim_rng_uniformf(aim_rng *r)
{
	return (float)(aim_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

void aim_rng_fill_uniform(aim_rng *r, float *x, long n, float a)
{
	for (long i = 0; i < n; i++)
		x[i] = (2.0f * aim_rng_uniformf(r) - 1.0f) * a;
}
