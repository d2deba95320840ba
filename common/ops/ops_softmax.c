/* Row softmax (the attention op has its own fused version; this one serves
 * heads and tests). */
#include "ops.h"
#include "ops_math.h"

AIM_VECTOR_CLONES
static void softmax_row(float *y, const float *x, int N)
{
	aim_softmax_row(y, x, N);
}

void aim_softmax_fwd(float *y, const float *x, int M, int N)
{
	#pragma omp parallel for schedule(static) if (M > 16)
	for (int i = 0; i < M; i++)
		softmax_row(y + (size_t)i * N, x + (size_t)i * N, N);
}

AIM_VECTOR_CLONES
static void softmax_bwd_row(float *dx, const float *dy, const float *y, int N)
{
	float s = 0.0f;
	#pragma omp simd reduction(+ : s)
	for (int j = 0; j < N; j++)
		s += dy[j] * y[j];
	#pragma omp simd
	for (int j = 0; j < N; j++)
		dx[j] += y[j] * (dy[j] - s);
}

void aim_softmax_bwd(float *dx, const float *dy, const float *y, int M, int N)
{
	#pragma omp parallel for schedule(static) if (M > 16)
	for (int i = 0; i < M; i++)
		softmax_bwd_row(dx + (size_t)i * N, dy + (size_t)i * N, y + (size_t)i * N, N);
}
