/* Branch-free float exp and erf that the compiler can vectorise (libm's
 * expf/erff are scalar calls, and the model evaluates hundreds of millions
 * of them per batch: softmax rows and the GELU of every MLP).
 * Internal to the ops_*.c files. The helpers are always inlined: GCC
 * would otherwise keep baseline-target copies out of line and call them,
 * one scalar call per element, from the AVX2 clones of the ops. */
#ifndef AIM_OPS_MATH_H
#define AIM_OPS_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Compile the hot loops of an op for AVX-512, AVX2 (ISA level x86-64-v3)
 * or plain x86-64 and pick one at load time (the build targets x86-64-v2
 * for portability). The resolver picks "arch=x86-64-v3" by the CPU's
 * features; "arch=haswell", used before, is picked by CPU model
 * (__builtin_cpu_is), so AMD Zen and every Intel core without AVX-512 but
 * Haswell itself ran the baseline SSE copies: the GELU and softmax loops
 * were a third of an AVX2 EPYC's extraction time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define AIM_VECTOR_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define AIM_VECTOR_CLONES
#endif

/* e^x with relative error below 2e-7 on [-87, 88]; 0 below, inf above.
 * Rounding to the nearest integer uses the 1.5·2^23 trick instead of
 * floorf(), which GCC would call out of line (and so not vectorise). */
static inline __attribute__((always_inline)) float aim_expf(float x)
{
	const float log2e = 1.44269504088896341f;
	const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
	const float shifter = 12582912.0f; /* 1.5 · 2^23 */
	x = x < -87.0f ? -87.0f : x;
	x = x > 88.0f ? 88.0f : x;
	float t = x * log2e + shifter;     /* n in the low mantissa bits */
	float n = t - shifter;
	float r = x - n * ln2_hi - n * ln2_lo;   /* |r| <= ln2/2 */
	/* Taylor to degree 7: truncation error < 3e-8 on |r| <= 0.347 */
	float p = 1.0f / 5040.0f;
	p = p * r + 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	int32_t tb, sb;
	memcpy(&tb, &t, sizeof tb);
	memcpy(&sb, &shifter, sizeof sb);
	int32_t bits = (tb - sb + 127) * (1 << 23); /* 2^n */
	float scale;
	memcpy(&scale, &bits, sizeof scale);
	return p * scale;
}

/* y[0..n) = softmax(x[0..n)) (y may be x); returns the log-sum-exp.
 * Always inlined into its callers, so it is vectorised in each of their
 * clones (the row softmax op and the attention's masked, in-place rows):
 * an out-of-line copy would be compiled for the baseline target only, and
 * attention ran 15 % slower that way. */
static inline __attribute__((always_inline)) float aim_softmax_row(float *y, const float *x,
								   int n)
{
	float mx = x[0];
	#pragma omp simd reduction(max : mx)
	for (int j = 1; j < n; j++)
		mx = x[j] > mx ? x[j] : mx;
	float sum = 0.0f;
	#pragma omp simd reduction(+ : sum)
	for (int j = 0; j < n; j++) {
		float e = aim_expf(x[j] - mx);
		y[j] = e;
		sum += e;
	}
	float inv = 1.0f / sum;
	#pragma omp simd
	for (int j = 0; j < n; j++)
		y[j] *= inv;
	return mx + logf(sum);
}

/* erf(x), absolute error below 2e-7 (Abramowitz & Stegun 7.1.26). */
static inline __attribute__((always_inline)) float aim_erff(float x)
{
	float a = fabsf(x);
	float t = 1.0f / (1.0f + 0.3275911f * a);
	float y = 1.061405429f;
	y = y * t - 1.453152027f;
	y = y * t + 1.421413741f;
	y = y * t - 0.284496736f;
	y = y * t + 0.254829592f;
	y = 1.0f - y * t * aim_expf(-a * a);
	return copysignf(y, x);
}

#endif
