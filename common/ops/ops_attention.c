/* Multi-head scaled dot-product attention, forward and backward, with the
 * three masks AIM needs (bidirectional, causal, prefix-causal).
 *
 * Work is split over (sample, head, block of QB query rows). Each piece is
 * three or four small GEMMs run by OpenBLAS inside the OpenMP thread that
 * owns it (OpenBLAS held at one thread meanwhile), reading Q, K and V
 * straight from the qkv activations through their row stride 3·D — no
 * packing, no transposes — and writing the output through stride D.
 * Scores exist for one block of rows per thread: memory O(threads·QB·K),
 * never B·H·K·K. The backward recomputes the probabilities from the saved
 * log-sum-exp (as FlashAttention does) instead of storing them. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"
#include "ops.h"
#include "ops_math.h"


#define QB 128 /* query rows per piece */

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

void aim_attention_fwd(float *out, float *lse, const float *qkv, int B, int K,
		       int H, int hd, aim_mask_kind mask, const int *prefix)
{
	geometry g = geom(B, K, H, hd);
	const float scale = 1.0f / sqrtf((float)hd);
	int held = aim_blas_hold_single();
	#pragma omp parallel
	{
		float *s = malloc(sizeof(float) * QB * (size_t)K);
		#pragma omp for schedule(dynamic)
		for (int piece = 0; piece < g.pieces; piece++) {
			int b = piece / (H * g.nq), h = piece / g.nq % H, i0 = piece % g.nq * QB;
			int n = K - i0 < QB ? K - i0 : QB;
			int Lmax = key_limit(i0 + n - 1, K, mask, prefix, b);
			const float *base = qkv + (size_t)b * K * g.stride + (size_t)h * hd;
			const float *q = base + (size_t)i0 * g.stride, *k = base + g.D, *v = base + 2 * g.D;
			/* S = scale · Q Kᵀ over the keys any row of the piece sees */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, Lmax, hd, scale, q,
				    (int)g.stride, k, (int)g.stride, 0.0f, s, Lmax);
			for (int r = 0; r < n; r++) {
				int L = key_limit(i0 + r, K, mask, prefix, b);
				float l = softmax_row(s + (size_t)r * Lmax, L, Lmax);
				if (lse)
					lse[((size_t)b * H + h) * K + i0 + r] = l;
			}
			/* O = P V, written into the token-major output */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, Lmax, 1.0f, s, Lmax,
				    v, (int)g.stride, 0.0f,
				    out + ((size_t)b * K + i0) * g.D + (size_t)h * hd, (int)g.D);
		}
		free(s);
	}
	aim_blas_release(held);
}

void aim_attention_bwd(float *dqkv, const float *dout, const float *qkv,
		       const float *out, const float *lse, int B, int K, int H,
		       int hd, aim_mask_kind mask, const int *prefix)
{
	geometry g = geom(B, K, H, hd);
	const float scale = 1.0f / sqrtf((float)hd);
	int held = aim_blas_hold_single();
	/* Pieces of one (sample, head) all add into that head's dK and dV, so
	 * a thread takes a whole (sample, head) and walks its query blocks. */
	#pragma omp parallel
	{
		float *p = malloc(sizeof(float) * QB * (size_t)K);
		float *ds = malloc(sizeof(float) * QB * (size_t)K);
		#pragma omp for schedule(dynamic)
		for (int bh = 0; bh < B * H; bh++) {
			int b = bh / H, h = bh % H;
			const float *base = qkv + (size_t)b * K * g.stride + (size_t)h * hd;
			float *dbase = dqkv + (size_t)b * K * g.stride + (size_t)h * hd;
			const float *k = base + g.D, *v = base + 2 * g.D;
			float *dk = dbase + g.D, *dv = dbase + 2 * g.D;
			int ld = (int)g.stride;
			for (int i0 = 0; i0 < K; i0 += QB) {
				int n = K - i0 < QB ? K - i0 : QB;
				int Lmax = key_limit(i0 + n - 1, K, mask, prefix, b);
				const float *q = base + (size_t)i0 * g.stride;
				const float *o = out + ((size_t)b * K + i0) * g.D + (size_t)h * hd;
				const float *dO = dout + ((size_t)b * K + i0) * g.D + (size_t)h * hd;
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, Lmax, hd, scale, q, ld,
					    k, ld, 0.0f, p, Lmax);
				for (int r = 0; r < n; r++)
					probs_row(p + (size_t)r * Lmax,
						  lse[((size_t)b * H + h) * K + i0 + r],
						  key_limit(i0 + r, K, mask, prefix, b), Lmax);
				/* dV += Pᵀ dO */
				cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Lmax, hd, n, 1.0f, p, Lmax,
					    dO, (int)g.D, 1.0f, dv, ld);
				/* dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(dO ⊙ O)) */
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, Lmax, hd, 1.0f, dO,
					    (int)g.D, v, ld, 0.0f, ds, Lmax);
				for (int r = 0; r < n; r++)
					dscores_row(ds + (size_t)r * Lmax, p + (size_t)r * Lmax,
						    dO + (size_t)r * g.D, o + (size_t)r * g.D, hd, Lmax);
				/* dQ += scale · dS K ; dK += scale · dSᵀ Q */
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, Lmax, scale, ds,
					    Lmax, k, ld, 1.0f, dbase + (size_t)i0 * g.stride, ld);
				cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Lmax, hd, n, scale, ds,
					    Lmax, q, ld, 1.0f, dk, ld);
			}
		}
		free(p);
		free(ds);
	}
	aim_blas_release(held);
}
