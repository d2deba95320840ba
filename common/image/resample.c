/* Pillow-exact bicubic resize (see resample.h for the method). */
#include "resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic(double x)
{
	const double a = -0.5;
	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

/* Fixed-point taps of one axis for the output positions first..first+n-1
 * (Pillow's precompute_coeffs + normalize_coeffs_8bpc). */
typedef struct {
	int ksize;
	int *lo, *count; /* first input index and number of taps per output */
	int32_t *k;      /* n * ksize weights */
} taps;

static void taps_free(taps *t)
{
	free(t->lo);
	free(t->count);
	free(t->k);
}

static int taps_make(taps *t, int in_size, int out_size, int first, int n)
{
	/* Pillow takes the box as floats: in1 - in0 is a float subtraction */
	double scale = (double)((float)in_size - 0.0f) / out_size;
	double filterscale = scale < 1.0 ? 1.0 : scale;
	double support = 2.0 * filterscale;
	int ksize = (int)ceil(support) * 2 + 1;
	double *w = malloc(sizeof(double) * ksize);
	t->ksize = ksize;
	t->lo = malloc(sizeof(int) * (n ? n : 1));
	t->count = malloc(sizeof(int) * (n ? n : 1));
	t->k = calloc((size_t)(n ? n : 1) * ksize, sizeof(int32_t));
	if (!w || !t->lo || !t->count || !t->k) {
		free(w);
		taps_free(t);
		return aim_error("out of memory for resampling taps");
	}
	for (int i = 0; i < n; i++) {
		int xx = first + i;
		double center = (xx + 0.5) * scale;
		double ww = 0.0, ss = 1.0 / filterscale;
		int xmin = (int)(center - support + 0.5);
		if (xmin < 0)
			xmin = 0;
		int xmax = (int)(center + support + 0.5);
		if (xmax > in_size)
			xmax = in_size;
		xmax -= xmin;
		for (int x = 0; x < xmax; x++) {
			w[x] = bicubic((x + xmin - center + 0.5) * ss);
			ww += w[x];
		}
		int32_t *k = t->k + (size_t)i * ksize;
		for (int x = 0; x < xmax; x++) {
			double v = ww != 0.0 ? w[x] / ww : w[x];
			k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
				     : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
		}
		t->lo[i] = xmin;
		t->count[i] = xmax;
	}
	free(w);
	return AIM_OK;
}

static inline uint8_t clip8(int32_t ss)
{
	int32_t v = ss >> PRECISION_BITS;
	return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

#ifdef HAVE_X86
/* Two rows at a time for RGB: the same taps for both, row r in lanes 0-3
 * and row r+1 in lanes 4-7 (R, G, B and one ignored lane). The 4-byte
 * loads stay inside the row except at its last pixel; such outputs and a
 * last odd row are left to the caller. Returns the rows done. */
__attribute__((target("avx2"))) static int horizontal_rgb_avx2(
	const uint8_t *src, size_t sstride, int sw, int nrows, const taps *t, int n, uint8_t *dst,
	size_t dstride)
{
	int r = 0;
	for (; r + 1 < nrows; r += 2) {
		const uint8_t *in0 = src + r * sstride, *in1 = in0 + sstride;
		uint8_t *out0 = dst + r * dstride, *out1 = out0 + dstride;
		for (int i = 0; i < n; i++) {
			const int32_t *k = t->k + (size_t)i * t->ksize;
			int lo = t->lo[i], cnt = t->count[i];
			if (lo + cnt >= sw) { /* last pixel in reach: scalar */
				for (int row = 0; row < 2; row++) {
					const uint8_t *p = (row ? in1 : in0) + (size_t)lo * 3;
					uint8_t *o = (row ? out1 : out0) + 3 * i;
					int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
					for (int x = 0; x < cnt; x++) {
						s0 += p[3 * x] * k[x];
						s1 += p[3 * x + 1] * k[x];
						s2 += p[3 * x + 2] * k[x];
					}
					o[0] = clip8(s0);
					o[1] = clip8(s1);
					o[2] = clip8(s2);
				}
				continue;
			}
			const uint8_t *p0 = in0 + (size_t)lo * 3, *p1 = in1 + (size_t)lo * 3;
			__m256i acc = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
			for (int x = 0; x < cnt; x++) {
				int32_t a, b;
				memcpy(&a, p0 + 3 * x, 4);
				memcpy(&b, p1 + 3 * x, 4);
				__m128i two = _mm_insert_epi32(_mm_cvtsi32_si128(a), b, 1);
				acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(two),
									  _mm256_set1_epi32(k[x])));
			}
			acc = _mm256_srai_epi32(acc, PRECISION_BITS);
			__m128i lo4 = _mm256_castsi256_si128(acc), hi4 = _mm256_extracti128_si256(acc, 1);
			__m128i b16 = _mm_packs_epi32(lo4, hi4);
			__m128i b8 = _mm_packus_epi16(b16, b16);
			int64_t v = _mm_cvtsi128_si64(b8);
			out0[3 * i] = (uint8_t)v;
			out0[3 * i + 1] = (uint8_t)(v >> 8);
			out0[3 * i + 2] = (uint8_t)(v >> 16);
			out1[3 * i] = (uint8_t)(v >> 32);
			out1[3 * i + 1] = (uint8_t)(v >> 40);
			out1[3 * i + 2] = (uint8_t)(v >> 48);
		}
	}
	return r;
}
#endif

/* Horizontal pass over nrows rows: dst[r][i] from src row r. */
static void pass_horizontal(const uint8_t *src, size_t sstride, int sw, int nrows, int c,
			    const taps *t, int n, uint8_t *dst, size_t dstride)
{
	(void)sw; /* used by the SIMD paths only */
	int r = 0;
#ifdef HAVE_X86
	if (c == 3 && __builtin_cpu_supports("avx2"))
		r = horizontal_rgb_avx2(src, sstride, sw, nrows, t, n, dst, dstride);
#endif
	for (; r < nrows; r++) {
		const uint8_t *in = src + r * sstride;
		uint8_t *out = dst + r * dstride;
		for (int i = 0; i < n; i++) {
			const int32_t *k = t->k + (size_t)i * t->ksize;
			const uint8_t *p = in + (size_t)t->lo[i] * c;
			int cnt = t->count[i];
			if (c == 3) {
#if defined(__SSE4_1__) && defined(HAVE_X86)
				/* one pixel per step: R,G,B (+ a lane ignored) as int32
				 * lanes; the 4-byte load stays inside the row except at
				 * its last pixel, which takes the scalar path */
				if (t->lo[i] + cnt < sw) {
					__m128i acc = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
					for (int x = 0; x < cnt; x++) {
						int32_t v;
						memcpy(&v, p + 3 * x, 4);
						__m128i px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(v));
						acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(k[x])));
					}
					acc = _mm_srai_epi32(acc, PRECISION_BITS);
					__m128i b = _mm_packus_epi16(_mm_packs_epi32(acc, acc), acc);
					int32_t o = _mm_cvtsi128_si32(b);
					out[3 * i] = (uint8_t)o;
					out[3 * i + 1] = (uint8_t)(o >> 8);
					out[3 * i + 2] = (uint8_t)(o >> 16);
					continue;
				}
#endif
				int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
				for (int x = 0; x < cnt; x++) {
					s0 += p[3 * x] * k[x];
					s1 += p[3 * x + 1] * k[x];
					s2 += p[3 * x + 2] * k[x];
				}
				out[3 * i] = clip8(s0);
				out[3 * i + 1] = clip8(s1);
				out[3 * i + 2] = clip8(s2);
			} else {
				int32_t s0 = 1 << (PRECISION_BITS - 1);
				for (int x = 0; x < cnt; x++)
					s0 += p[x] * k[x];
				out[i] = clip8(s0);
			}
		}
	}
}

/* Vertical pass: output row i from rows lo[i].. of src; rows are
 * independent columns of samples, so the inner loop runs along a row. */
__attribute__((target_clones("avx2", "default")))
static void pass_vertical(const uint8_t *src, size_t sstride, int width, const taps *t,
			  int n, uint8_t *dst, size_t dstride, int32_t *acc)
{
	for (int i = 0; i < n; i++) {
		const int32_t *k = t->k + (size_t)i * t->ksize;
		int cnt = t->count[i];
		for (int x = 0; x < width; x++)
			acc[x] = 1 << (PRECISION_BITS - 1);
		for (int y = 0; y < cnt; y++) {
			const uint8_t *row = src + (size_t)(t->lo[i] + y) * sstride;
			int32_t ky = k[y];
#pragma omp simd
			for (int x = 0; x < width; x++)
				acc[x] += row[x] * ky;
		}
		uint8_t *out = dst + (size_t)i * dstride;
#pragma omp simd
		for (int x = 0; x < width; x++)
			out[x] = clip8(acc[x]);
	}
}

int aim_resize_bicubic(const uint8_t *src, int sw, int sh, size_t sstride, int c, int ow,
		       int oh, int x0, int y0, int cw, int ch, uint8_t *dst)
{
	size_t dstride = (size_t)cw * c;
	int need_h = ow != sw, need_v = oh != sh;
	if (x0 < 0 || y0 < 0 || cw < 0 || ch < 0 || x0 + cw > ow || y0 + ch > oh)
		return aim_error("resize window outside the output");
	if (cw == 0 || ch == 0)
		return AIM_OK;

	/* Rows of the source the window needs, and their vertical taps. */
	taps tv = {0}, th = {0};
	int row_first = y0, row_end = y0 + ch;
	if (need_v) {
		if (taps_make(&tv, sh, oh, y0, ch) < 0)
			return AIM_ERR;
		row_first = tv.lo[0];
		row_end = tv.lo[ch - 1] + tv.count[ch - 1];
		for (int i = 0; i < ch; i++)
			tv.lo[i] -= row_first;
	}
	int nrows = row_end - row_first;

	/* Horizontal pass (or plain column window) into tmp: nrows x cw. */
	const uint8_t *hsrc;
	size_t hstride;
	uint8_t *tmp = NULL;
	if (need_h) {
		if (taps_make(&th, sw, ow, x0, cw) < 0) {
			taps_free(&tv);
			return AIM_ERR;
		}
		uint8_t *target = dst;
		if (need_v) {
			tmp = malloc((size_t)nrows * dstride);
			if (!tmp) {
				taps_free(&tv);
				taps_free(&th);
				return aim_error("out of memory for resampling");
			}
			target = tmp;
		}
		pass_horizontal(src + (size_t)row_first * sstride, sstride, sw, nrows, c, &th, cw,
				target, dstride);
		taps_free(&th);
		if (!need_v)
			return AIM_OK;
		hsrc = tmp;
		hstride = dstride;
	} else {
		hsrc = src + (size_t)row_first * sstride + (size_t)x0 * c;
		hstride = sstride;
	}

	if (need_v) {
		int32_t *acc = malloc(sizeof(int32_t) * dstride);
		if (!acc) {
			free(tmp);
			taps_free(&tv);
			return aim_error("out of memory for resampling");
		}
		pass_vertical(hsrc, hstride, (int)dstride, &tv, ch, dst, dstride, acc);
		free(acc);
		taps_free(&tv);
	} else {
		for (int y = 0; y < ch; y++)
			memcpy(dst + (size_t)y * dstride, hsrc + (size_t)y * hstride, dstride);
	}
	free(tmp);
	return AIM_OK;
}
