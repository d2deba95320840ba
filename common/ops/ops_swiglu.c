/* The SwiGLU gate of AIMv2's MLP: h = silu(a) · b, where a = fc1(x) and
 * b = fc3(x) (F.silu(fc1 x) * fc3 x in the published code). */
#include <stddef.h>

#include "ops.h"
#include "ops_math.h"

#define SWIGLU_CHUNK 4096

AIM_VECTOR_CLONES
static void swiglu_chunk(float *y, const float *a, const float *b, size_t n)
{
	#pragma omp simd
	for (size_t i = 0; i < n; i++) {
		float v = a[i];
		y[i] = v / (1.0f + aim_expf(-v)) * b[i];
	}
}

void aim_swiglu_fwd(float *y, const float *a, const float *b, size_t n)
{
	long nchunks = (long)((n + SWIGLU_CHUNK - 1) / SWIGLU_CHUNK);
	#pragma omp parallel for schedule(static)
	for (long c = 0; c < nchunks; c++) {
		size_t o = (size_t)c * SWIGLU_CHUNK;
		swiglu_chunk(y + o, a + o, b + o, n - o < SWIGLU_CHUNK ? n - o : SWIGLU_CHUNK);
	}
}

/* With σ = sigmoid(a): silu(a) = a·σ, silu'(a) = σ·(1 + a·(1 − σ)).
 *   da += dy · b · silu'(a),  db += dy · silu(a). */
AIM_VECTOR_CLONES
static void swiglu_bwd_chunk(float *da, float *db, const float *dy, const float *a,
			     const float *b, size_t n)
{
	#pragma omp simd
	for (size_t i = 0; i < n; i++) {
		float v = a[i], s = 1.0f / (1.0f + aim_expf(-v));
		da[i] += dy[i] * b[i] * s * (1.0f + v * (1.0f - s));
		db[i] += dy[i] * v * s;
	}
}

void aim_swiglu_bwd(float *da, float *db, const float *dy, const float *a, const float *b,
		    size_t n)
{
	long nchunks = (long)((n + SWIGLU_CHUNK - 1) / SWIGLU_CHUNK);
	#pragma omp parallel for schedule(static)
	for (long c = 0; c < nchunks; c++) {
		size_t o = (size_t)c * SWIGLU_CHUNK;
		swiglu_bwd_chunk(da + o, db + o, dy + o, a + o, b + o,
				 n - o < SWIGLU_CHUNK ? n - o : SWIGLU_CHUNK);
	}
}
