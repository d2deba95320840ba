/* Element-wise helpers: residual adds, broadcasts, scaling. */
#include "ops.h"

#define ADD_PAR 32768 /* below this, threads cost more than they save */

void aim_add_fwd(float *y, const float *a, const float *b, size_t n)
{
	#pragma omp parallel for simd schedule(static) if (n > ADD_PAR)
	for (size_t i = 0; i < n; i++)
		y[i] = a[i] + b[i];
}

void aim_add_rows(float *y, const float *t, int B, size_t N)
{
	for (int b = 0; b < B; b++) {
		float *yb = y + (size_t)b * N;
		#pragma omp parallel for simd schedule(static) if (N > ADD_PAR)
		for (size_t i = 0; i < N; i++)
			yb[i] += t[i];
	}
}

void aim_axpy(float *y, float s, const float *x, size_t n)
{
	#pragma omp parallel for simd schedule(static) if (n > ADD_PAR)
	for (size_t i = 0; i < n; i++)
		y[i] += s * x[i];
}

void aim_add_scaled_rows(float *y, const float *a, const float *s, const float *x, int B,
			 size_t N)
{
	#pragma omp parallel for schedule(static) if ((size_t)B * N > ADD_PAR)
	for (int b = 0; b < B; b++) {
		float *yb = y + (size_t)b * N, sb = s[b];
		const float *xb = x + (size_t)b * N, *ab = a ? a + (size_t)b * N : NULL;
		if (ab)
			for (size_t i = 0; i < N; i++)
				yb[i] = ab[i] + sb * xb[i];
		else
			for (size_t i = 0; i < N; i++)
				yb[i] = sb * xb[i];
	}
}

void aim_scale(float *y, float s, const float *x, size_t n)
{
	#pragma omp parallel for simd schedule(static) if (n > ADD_PAR)
	for (size_t i = 0; i < n; i++)
		y[i] = s * x[i];
}
