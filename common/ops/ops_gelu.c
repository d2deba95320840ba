/* Exact (erf) GELU, as nn.GELU() with its default approximate='none'. */
#include <stddef.h>

#include "ops.h"
#include "ops_math.h"

#define GELU_CHUNK 4096

AIM_VECTOR_CLONES
static void gelu_chunk(float *y, const float *x, size_t n)
{
	#pragma omp simd
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		y[i] = 0.5f * v * (1.0f + aim_erff(v * 0.70710678118654752f));
	}
}

void aim_gelu_fwd(float *y, const float *x, size_t n)
{
	long nchunks = (long)((n + GELU_CHUNK - 1) / GELU_CHUNK);
	#pragma omp parallel for schedule(static)
	for (long c = 0; c < nchunks; c++) {
		size_t o = (size_t)c * GELU_CHUNK;
		gelu_chunk(y + o, x + o, n - o < GELU_CHUNK ? n - o : GELU_CHUNK);
	}
}

/* GELU'(x) = Φ(x) + x·φ(x) */
AIM_VECTOR_CLONES
static void gelu_bwd_chunk(float *dx, const float *dy, const float *x, size_t n)
{
	#pragma omp simd
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		float cdf = 0.5f * (1.0f + aim_erff(v * 0.70710678118654752f));
		float pdf = 0.39894228040143268f * aim_expf(-0.5f * v * v);
		dx[i] += dy[i] * (cdf + v * pdf);
	}
}

void aim_gelu_bwd(float *dx, const float *dy, const float *x, size_t n)
{
	long nchunks = (long)((n + GELU_CHUNK - 1) / GELU_CHUNK);
	#pragma omp parallel for schedule(static)
	for (long c = 0; c < nchunks; c++) {
		size_t o = (size_t)c * GELU_CHUNK;
		gelu_bwd_chunk(dx + o, dy + o, x + o, n - o < GELU_CHUNK ? n - o : GELU_CHUNK);
	}
}
