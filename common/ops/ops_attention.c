/* Multi-head scaled dot-product attention, forward and backward, with the
 * three masks AIM needs (bidirectional, causal, prefix-causal).
 *
 * Work is split over (sample, head, block of QB query rows). Each piece is
 * two (forward) or five (backward) small GEMMs run inside the OpenMP
 * thread that owns it (gemm.h; OpenBLAS held at one thread meanwhile),
 * reading Q, K and V straight from the qkv activations through their row
 * stride 3·D — no packing, no transposes — and writing the output through
 * stride D.
 *
 * bf16 (--precision bf16, ops_bf16.h): the same products with bf16
 * operands through oneDNN, fp32 accumulation and results, when the
 * sequence has at least BF16_MIN_KEYS tokens (below that, 49 tokens measured, a bf16 primitive
 * call costs more than the fp32 product it replaces). Q, K, V and dO are
 * rounded once per call, P and dS once per piece; the softmax, its
 * log-sum-exp and dS = P ⊙ (dP − rowsum(dO ⊙ O)) stay fp32. The number
 * of keys a piece multiplies is rounded up to a multiple of 32 (the
 * probabilities past a row's limit are zero), so the causal and prefix
 * masks make a few dozen primitive shapes, not one per prefix length.
 * Scores exist for one block of rows per thread: memory O(threads·QB·K),
 * never B·H·K·K. The backward recomputes the probabilities from the saved
 * log-sum-exp (as FlashAttention does) instead of storing them. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"
#include "dnnl_gemm.h"
#include "gemm.h"
#include "ops_bf16.h"
#include "ops.h"
#include "ops_math.h"


#define QB 128 /* query rows per piece */
#define BF16_MIN_KEYS 64

/* Number of keys row i may see (keys 0 .. limit-1). */
static inline int key_limit(int i, int K, aim_mask_kind mask, const int *prefix, int b)
{
	if (mask == AIM_MASK_NONE)
		return K;
	int l = i + 1;
	if (mask == AIM_MASK_PREFIX && prefix) {
		int p = prefix[b] < K ? prefix[b] : K;
		l = p > l ? p : l;
	}
	return l;
}

/* In place: p[0..L) = softmax, p[L..Lmax) = 0; returns the log-sum-exp. */
AIM_VECTOR_CLONES
static float softmax_row(float *p, int L, int Lmax)
{
	float lse = aim_softmax_row(p, p, L);
	for (int j = L; j < Lmax; j++)
		p[j] = 0.0f;
	return lse;
}

/* p[0..L) = exp(s − lse), p[L..Lmax) = 0 (the forward's probabilities). */
AIM_VECTOR_CLONES
static void probs_row(float *p, float lse, int L, int Lmax)
{
	#pragma omp simd
	for (int j = 0; j < L; j++)
		p[j] = aim_expf(p[j] - lse);
	for (int j = L; j < Lmax; j++)
		p[j] = 0.0f;
}

/* x[0..n) *= scale: the bf16 products leave the 1/√hd scale to fp32. */
AIM_VECTOR_CLONES
static void scale_row(float *x, float scale, size_t n)
{
	#pragma omp simd
	for (size_t j = 0; j < n; j++)
		x[j] *= scale;
}

/* ds = p ⊙ (dp − Σ dO⊙O) over one row. */
AIM_VECTOR_CLONES
static void dscores_row(float *ds, const float *p, const float *dout, const float *o, int hd,
			int Lmax)
{
	float di = 0.0f;
	#pragma omp simd reduction(+ : di)
	for (int d = 0; d < hd; d++)
		di += dout[d] * o[d];
	#pragma omp simd
	for (int j = 0; j < Lmax; j++)
		ds[j] = p[j] * (ds[j] - di);
}

typedef struct {
	int B, K, H, hd, nq, pieces;
	size_t D, stride;
} geometry;

static geometry geom(int B, int K, int H, int hd)
{
	geometry g = {B, K, H, hd, (K + QB - 1) / QB, 0, (size_t)H * hd, 3 * (size_t)H * hd};
	g.pieces = B * H * g.nq;
	return g;
}

/* The keys a piece multiplies: Lmax, or in bf16 Lmax rounded up to 32. */
static int keys_done(int Lmax, int K, int bf16)
{
	if (!bf16)
		return Lmax;
	int l = (Lmax + 31) / 32 * 32;
	return l < K ? l : K;
}

/* bf16 copy of n floats (NULL when out of memory: the caller falls back
 * to fp32, which gives the same result within bf16 tolerance). */
static uint16_t *bf16_copy(const float *x, size_t n)
{
	uint16_t *h = malloc(sizeof(uint16_t) * (n ? n : 1));
	if (h)
		aim_bf16_convert(h, x, n);
	return h;
}

/* C[M,N] (=, or += with acc) alpha · op(A) op(B): the fp32 operands, or,
 * when Ah/Bh are given, their bf16 copies at the same offsets (alpha is
 * then 1: the callers fold their scale in elsewhere). */
static void product(int ta, int tb, int M, int N, int K, float alpha, const float *A,
		    const uint16_t *Ah, int lda, const float *B, const uint16_t *Bh, int ldb,
		    int acc, float *C, int ldc)
{
	if (Ah && Bh)
		aim_dnnl_gemm(AIM_GEMM_BF16, ta, tb, M, N, K, Ah, lda, Bh, ldb, NULL, acc, C, ldc);
	else
		aim_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, acc ? 1.0f : 0.0f, C, ldc);
}

static void attention_fwd(float *out, float *lse, const float *qkv, int B, int K, int H,
			  int hd, aim_mask_kind mask, const int *prefix, int bf16)
{
	geometry g = geom(B, K, H, hd);
	const float scale = 1.0f / sqrtf((float)hd);
	uint16_t *qkvh = bf16 ? bf16_copy(qkv, (size_t)B * K * g.stride) : NULL;
	bf16 = qkvh != NULL;
	int held = aim_blas_hold_single();
	#pragma omp parallel
	{
		float *s = malloc(sizeof(float) * QB * (size_t)K);
		uint16_t *ph = bf16 ? malloc(sizeof(uint16_t) * QB * (size_t)K) : NULL;
		#pragma omp for schedule(dynamic)
		for (int piece = 0; piece < g.pieces; piece++) {
			int b = piece / (H * g.nq), h = piece / g.nq % H, i0 = piece % g.nq * QB;
			int n = K - i0 < QB ? K - i0 : QB;
			int Lmax = keys_done(key_limit(i0 + n - 1, K, mask, prefix, b), K, bf16);
			size_t off = (size_t)b * K * g.stride + (size_t)h * hd;
			size_t qo = off + (size_t)i0 * g.stride, ko = off + g.D, vo = off + 2 * g.D;
			const uint16_t *qh = qkvh ? qkvh + qo : NULL, *kh = qkvh ? qkvh + ko : NULL;
			/* S = scale · Q Kᵀ over the keys any row of the piece sees
			 * (in bf16 the scale is applied to the fp32 scores) */
			product(0, 1, n, Lmax, hd, scale, qkv + qo, qh, (int)g.stride, qkv + ko, kh,
				(int)g.stride, 0, s, Lmax);
			for (int r = 0; r < n; r++) {
				float *row = s + (size_t)r * Lmax;
				int L = key_limit(i0 + r, K, mask, prefix, b);
				if (bf16)
					scale_row(row, scale, L);
				float l = softmax_row(row, L, Lmax);
				if (lse)
					lse[((size_t)b * H + h) * K + i0 + r] = l;
			}
			if (bf16)
				aim_bf16_convert(ph, s, (size_t)n * Lmax);
			/* O = P V, written into the token-major output */
			product(0, 0, n, hd, Lmax, 1.0f, s, ph, Lmax, qkv + vo, qkvh ? qkvh + vo : NULL,
				(int)g.stride, 0, out + ((size_t)b * K + i0) * g.D + (size_t)h * hd,
				(int)g.D);
		}
		free(s);
		free(ph);
	}
	aim_blas_release(held);
	free(qkvh);
}

static void attention_bwd(float *dqkv, const float *dout, const float *qkv, const float *out,
			  const float *lse, int B, int K, int H, int hd, aim_mask_kind mask,
			  const int *prefix, int bf16)
{
	geometry g = geom(B, K, H, hd);
	const float scale = 1.0f / sqrtf((float)hd);
	uint16_t *qkvh = bf16 ? bf16_copy(qkv, (size_t)B * K * g.stride) : NULL;
	uint16_t *douth = qkvh ? bf16_copy(dout, (size_t)B * K * g.D) : NULL;
	if (!douth) {
		free(qkvh);
		qkvh = NULL;
	}
	bf16 = douth != NULL;
	int held = aim_blas_hold_single();
	/* Pieces of one (sample, head) all add into that head's dK and dV, so
	 * a thread takes a whole (sample, head) and walks its query blocks. */
	#pragma omp parallel
	{
		float *p = malloc(sizeof(float) * QB * (size_t)K);
		float *ds = malloc(sizeof(float) * QB * (size_t)K);
		uint16_t *ph = bf16 ? malloc(sizeof(uint16_t) * QB * (size_t)K) : NULL;
		uint16_t *dsh = bf16 ? malloc(sizeof(uint16_t) * QB * (size_t)K) : NULL;
		#pragma omp for schedule(dynamic)
		for (int bh = 0; bh < B * H; bh++) {
			int b = bh / H, h = bh % H;
			size_t off = (size_t)b * K * g.stride + (size_t)h * hd;
			size_t ko = off + g.D, vo = off + 2 * g.D;
			const float *k = qkv + ko, *v = qkv + vo;
			const uint16_t *kh = bf16 ? qkvh + ko : NULL, *vh = bf16 ? qkvh + vo : NULL;
			float *dbase = dqkv + off;
			float *dk = dbase + g.D, *dv = dbase + 2 * g.D;
			int ld = (int)g.stride;
			for (int i0 = 0; i0 < K; i0 += QB) {
				int n = K - i0 < QB ? K - i0 : QB;
				int Lmax = keys_done(key_limit(i0 + n - 1, K, mask, prefix, b), K, bf16);
				size_t qo = off + (size_t)i0 * g.stride;
				size_t oo = ((size_t)b * K + i0) * g.D + (size_t)h * hd;
				const float *q = qkv + qo, *o = out + oo, *dO = dout + oo;
				const uint16_t *qh = bf16 ? qkvh + qo : NULL;
				const uint16_t *dOh = bf16 ? douth + oo : NULL;
				/* P again from the scores and the saved log-sum-exp */
				product(0, 1, n, Lmax, hd, scale, q, qh, ld, k, kh, ld, 0, p, Lmax);
				for (int r = 0; r < n; r++) {
					float *row = p + (size_t)r * Lmax;
					int L = key_limit(i0 + r, K, mask, prefix, b);
					if (bf16)
						scale_row(row, scale, L);
					probs_row(row, lse[((size_t)b * H + h) * K + i0 + r], L, Lmax);
				}
				if (bf16)
					aim_bf16_convert(ph, p, (size_t)n * Lmax);
				/* dV += Pᵀ dO */
				product(1, 0, Lmax, hd, n, 1.0f, p, ph, Lmax, dO, dOh, (int)g.D, 1, dv, ld);
				/* dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(dO ⊙ O)) */
				product(0, 1, n, Lmax, hd, 1.0f, dO, dOh, (int)g.D, v, vh, ld, 0, ds, Lmax);
				for (int r = 0; r < n; r++)
					dscores_row(ds + (size_t)r * Lmax, p + (size_t)r * Lmax,
						    dO + (size_t)r * g.D, o + (size_t)r * g.D, hd, Lmax);
				if (bf16) { /* the scale goes into dS before its rounding */
					size_t nn = (size_t)n * Lmax;
					scale_row(ds, scale, nn);
					aim_bf16_convert(dsh, ds, nn);
				}
				/* dQ += scale · dS K ; dK += scale · dSᵀ Q */
				product(0, 0, n, hd, Lmax, scale, ds, dsh, Lmax, k, kh, ld, 1,
					dbase + (size_t)i0 * g.stride, ld);
				product(1, 0, Lmax, hd, n, scale, ds, dsh, Lmax, q, qh, ld, 1, dk, ld);
			}
		}
		free(p);
		free(ds);
		free(ph);
		free(dsh);
	}
	aim_blas_release(held);
	free(qkvh);
	free(douth);
}

void aim_attention_fwd(float *out, float *lse, const float *qkv, int B, int K, int H, int hd,
		       aim_mask_kind mask, const int *prefix)
{
	attention_fwd(out, lse, qkv, B, K, H, hd, mask, prefix, 0);
}

void aim_attention_bwd(float *dqkv, const float *dout, const float *qkv, const float *out,
		       const float *lse, int B, int K, int H, int hd, aim_mask_kind mask,
		       const int *prefix)
{
	attention_bwd(dqkv, dout, qkv, out, lse, B, K, H, hd, mask, prefix, 0);
}

void aim_attention_fwd_bf16(float *out, float *lse, const float *qkv, int B, int K, int H,
			    int hd, aim_mask_kind mask, const int *prefix)
{
	attention_fwd(out, lse, qkv, B, K, H, hd, mask, prefix, K >= BF16_MIN_KEYS);
}

void aim_attention_bwd_bf16(float *dqkv, const float *dout, const float *qkv, const float *out,
			    const float *lse, int B, int K, int H, int hd, aim_mask_kind mask,
			    const int *prefix)
{
	attention_bwd(dqkv, dout, qkv, out, lse, B, K, H, hd, mask, prefix, K >= BF16_MIN_KEYS);
}
