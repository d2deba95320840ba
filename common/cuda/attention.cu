/* Fused multi-head attention, forward and backward, flash style
 * (ops_attention.c has the CPU version and the layout):
 *   qkv [B, K, 3, H, hd], out [B, K, H·hd], lse [B, H, K],
 *   masks none / causal / prefix-causal (key j visible to query i when
 *   j < limit(i) = K, i+1, or max(i+1, prefix[b])).
 * The K×K scores never reach global memory: a block holds one tile of
 * queries (or keys) in shared memory and streams tiles of the other side
 * through it.
 *
 * Forward: online softmax over key tiles (running max m, running sum l,
 * the output rescaled when the max grows); writes out = o/l and
 * lse = m + log l.
 * Backward (FlashAttention-2 algebra, recomputing p = exp(s − lse)):
 *   delta_i = dO_i·O_i,  dp_ij = dO_i·v_j,  ds_ij = p_ij (dp_ij − delta_i),
 *   dq_i += scale Σ_j ds_ij k_j   (one kernel, a block per query tile),
 *   dk_j += scale Σ_i ds_ij q_i,  dv_j += Σ_i p_ij dO_i   (another kernel,
 *   a block per key tile). Each gradient element has one writer, so no
 *   atomics and the same result on every run.
 *
 * Tiles are compiled for head dims padded to 32, 64 or 128 (zero padding
 * leaves the dot products unchanged); other head dims use a plain
 * warp-per-query kernel pair.
 *
 * Thread layout of the tile kernels: 128 threads as 16 row groups (ty) ×
 * 8 column groups (tx). A thread owns rows ty·R + r and columns tx + 8c of
 * each score tile and columns tx + 8c of each output row, so the 8 threads
 * of a row group are 8 consecutive lanes and row reductions are three
 * shuffles. Shared rows are padded to an odd stride (HD+1, tile+1): the
 * column reads of a warp hit distinct banks. */
#include <math.h>

#include "cuda/cuda_util.cuh"
#include "cuda/ops_cuda.cuh"

#define ATT_THREADS 128
#define ATT_TX 8
#define ATT_TY 16
#define ATT_BQ 64  /* forward: queries per block */
#define ATT_BK 32  /* forward, dq: keys per step */
#define ATT_DQ_BQ 32 /* dq: queries per block */
#define ATT_KT 32  /* dk/dv: keys per block */
#define ATT_QT 32  /* dk/dv: queries per step */
#define ATT_RQ (ATT_BQ / ATT_TY)       /* 4 query rows per thread (forward) */
#define ATT_DQ_RQ (ATT_DQ_BQ / ATT_TY) /* 2 query rows per thread (dq) */
#define ATT_CK (ATT_BK / ATT_TX)       /* 4 key columns per thread */
#define ATT_RK (ATT_KT / ATT_TY)       /* 2 key rows per thread (dk/dv) */
#define ATT_CQ (ATT_QT / ATT_TX)       /* 4 query columns per thread (dk/dv) */
/* Shared memory per block stays under 76 KiB for every HD (at most
 * 73 KiB, dk/dv at HD 128), below the 99 KiB opt-in limit of sm_86/89
 * and far below sm_80/90's: see cuda_attention_smem(). */

/* Keys 0 .. limit-1 are visible to query i. plen is the sample's prefix
 * length clamped to K (0 when there is none, which makes the prefix mask
 * causal, as the CPU op does for a NULL prefix). */
__device__ __forceinline__ int att_limit(int i, int K, int mask, int plen)
{
	return mask == AIM_MASK_NONE ? K : aim_imax(i + 1, plen);
}

__device__ __forceinline__ int att_plen(int mask, const int *prefix, int b, int K)
{
	return mask == AIM_MASK_PREFIX && prefix ? aim_imin(prefix[b], K) : 0;
}

/* rows [row0, row0+rows) of one head's q (part 0), k (1) or v (2) into
 * shared dst[rows][ld], zero beyond K and beyond hd. */
template <int HD>
__device__ __forceinline__ void att_load(float *dst, int ld, const float *head, size_t stride,
					 int row0, int rows, int K, int hd)
{
	for (int idx = threadIdx.x; idx < rows * HD; idx += ATT_THREADS) {
		int r = idx / HD, d = idx % HD, i = row0 + r;
		dst[r * ld + d] = i < K && d < hd ? head[(size_t)i * stride + d] : 0.0f;
	}
}

/* Block index x enumerates (tile, head, sample): grid y and z are limited
 * to 65535, x is not. */
struct att_where {
	int tile, h, b;
};
__device__ __forceinline__ att_where att_block(int ntiles, int H)
{
	att_where w;
	unsigned bx = blockIdx.x;
	w.tile = (int)(bx % (unsigned)ntiles);
	w.h = (int)(bx / (unsigned)ntiles % (unsigned)H);
	w.b = (int)(bx / ((unsigned)ntiles * (unsigned)H));
	return w;
}

/* ---- forward ------------------------------------------------------------- */

template <int HD> constexpr size_t att_fwd_smem()
{
	return sizeof(float) * ((size_t)(ATT_BQ + 2 * ATT_BK) * (HD + 1) + ATT_BQ * (ATT_BK + 1));
}

template <int HD>
__global__ void __launch_bounds__(ATT_THREADS)
att_fwd_kernel(float *out, float *lse, const float *qkv, int K, int H, int hd, int mask,
	       const int *prefix, float scale)
{
	constexpr int LD = HD + 1, LDP = ATT_BK + 1, CD = HD / ATT_TX;
	AIM_DYN_SMEM(float, sm);
	float *Qs = sm, *Ks = Qs + ATT_BQ * LD, *Vs = Ks + ATT_BK * LD, *Ps = Vs + ATT_BK * LD;
	const int tx = threadIdx.x % ATT_TX, ty = threadIdx.x / ATT_TX;
	const int ntiles = (K + ATT_BQ - 1) / ATT_BQ;
	const att_where w = att_block(ntiles, H);
	const int q0 = w.tile * ATT_BQ;
	const size_t D = (size_t)H * hd, stride = 3 * D;
	const float *head = qkv + (size_t)w.b * K * stride + (size_t)w.h * hd;
	const int plen = att_plen(mask, prefix, w.b, K);

	att_load<HD>(Qs, LD, head, stride, q0, ATT_BQ, K, hd);

	float m[ATT_RQ], l[ATT_RQ], o[ATT_RQ][CD];
#pragma unroll
	for (int r = 0; r < ATT_RQ; r++) {
		m[r] = -INFINITY;
		l[r] = 0.0f;
#pragma unroll
		for (int c = 0; c < CD; c++)
			o[r][c] = 0.0f;
	}
	/* limit() grows with i: the tile's last row sees the most keys. */
	const int kend = att_limit(aim_imin(q0 + ATT_BQ, K) - 1, K, mask, plen);
	for (int k0 = 0; k0 < kend; k0 += ATT_BK) {
		__syncthreads(); /* the previous step is done with Ks, Vs, Ps */
		att_load<HD>(Ks, LD, head + D, stride, k0, ATT_BK, K, hd);
		att_load<HD>(Vs, LD, head + 2 * D, stride, k0, ATT_BK, K, hd);
		__syncthreads();

		float s[ATT_RQ][ATT_CK];
#pragma unroll
		for (int r = 0; r < ATT_RQ; r++)
#pragma unroll
			for (int c = 0; c < ATT_CK; c++)
				s[r][c] = 0.0f;
#pragma unroll 4
		for (int d = 0; d < HD; d++) {
			float q[ATT_RQ], k[ATT_CK];
#pragma unroll
			for (int r = 0; r < ATT_RQ; r++)
				q[r] = Qs[(ty * ATT_RQ + r) * LD + d];
#pragma unroll
			for (int c = 0; c < ATT_CK; c++)
				k[c] = Ks[(tx + ATT_TX * c) * LD + d];
#pragma unroll
			for (int r = 0; r < ATT_RQ; r++)
#pragma unroll
				for (int c = 0; c < ATT_CK; c++)
					s[r][c] += q[r] * k[c];
		}

#pragma unroll
		for (int r = 0; r < ATT_RQ; r++) {
			const int i = q0 + ty * ATT_RQ + r, lim = aim_imin(att_limit(i, K, mask, plen), K);
			float mx = -INFINITY;
#pragma unroll
			for (int c = 0; c < ATT_CK; c++) {
				int j = k0 + tx + ATT_TX * c;
				s[r][c] = j < lim ? s[r][c] * scale : -INFINITY;
				mx = fmaxf(mx, s[r][c]);
			}
			/* the row's 8 column groups are 8 consecutive lanes */
			mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
			mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
			mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
			const float mnew = fmaxf(m[r], mx);
			/* a row with nothing visible yet keeps p = 0, alpha = 0 */
			const float base = mnew == -INFINITY ? 0.0f : mnew;
			const float alpha = expf(m[r] - base);
			float sum = 0.0f;
#pragma unroll
			for (int c = 0; c < ATT_CK; c++) {
				float p = expf(s[r][c] - base);
				sum += p;
				Ps[(ty * ATT_RQ + r) * LDP + tx + ATT_TX * c] = p;
			}
			sum += __shfl_xor_sync(0xffffffffu, sum, 4);
			sum += __shfl_xor_sync(0xffffffffu, sum, 2);
			sum += __shfl_xor_sync(0xffffffffu, sum, 1);
			l[r] = l[r] * alpha + sum;
			m[r] = mnew;
#pragma unroll
			for (int c = 0; c < CD; c++)
				o[r][c] *= alpha;
		}
		__syncthreads(); /* Ps complete */

#pragma unroll 2
		for (int j = 0; j < ATT_BK; j++) {
			float v[CD];
#pragma unroll
			for (int c = 0; c < CD; c++)
				v[c] = Vs[j * LD + tx + ATT_TX * c];
#pragma unroll
			for (int r = 0; r < ATT_RQ; r++) {
				float p = Ps[(ty * ATT_RQ + r) * LDP + j];
#pragma unroll
				for (int c = 0; c < CD; c++)
					o[r][c] += p * v[c];
			}
		}
	}

#pragma unroll
	for (int r = 0; r < ATT_RQ; r++) {
		const int i = q0 + ty * ATT_RQ + r;
		if (i >= K)
			continue;
		const float inv = 1.0f / l[r];
		float *orow = out + ((size_t)w.b * K + i) * D + (size_t)w.h * hd;
#pragma unroll
		for (int c = 0; c < CD; c++) {
			int d = tx + ATT_TX * c;
			if (d < hd)
				orow[d] = o[r][c] * inv;
		}
		if (lse && tx == 0)
			lse[((size_t)w.b * H + w.h) * K + i] = m[r] + logf(l[r]);
	}
}

/* ---- backward: delta = rowsum(dO ⊙ O) ------------------------------------ */

/* One warp per (sample, token, head) row; delta is stored [B, H, K]. */
__global__ void att_delta_kernel(float *delta, const float *dout, const float *out, int B,
				 int K, int H, int hd)
{
	const size_t rows = (size_t)B * K * H;
	const size_t row = (size_t)blockIdx.x * (ATT_THREADS / 32) + threadIdx.x / 32;
	const int lane = threadIdx.x % 32;
	if (row >= rows)
		return;
	const float *a = dout + row * hd, *o = out + row * hd;
	float s = 0.0f;
	for (int d = lane; d < hd; d += 32)
		s += a[d] * o[d];
	s = aim_warp_sum(s);
	if (lane == 0) {
		int h = (int)(row % H);
		size_t bi = row / H; /* b·K + i */
		size_t b = bi / K, i = bi % K;
		delta[(b * H + h) * K + i] = s;
	}
}

/* ---- backward: dq, a block per query tile --------------------------------- */

template <int HD> constexpr size_t att_dq_smem()
{
	return sizeof(float) * ((size_t)(2 * ATT_DQ_BQ + 2 * ATT_BK) * (HD + 1) +
				ATT_DQ_BQ * (ATT_BK + 1));
}

template <int HD>
__global__ void __launch_bounds__(ATT_THREADS)
att_dq_kernel(float *dqkv, const float *dout, const float *qkv, const float *lse,
	      const float *delta, int K, int H, int hd, int mask, const int *prefix, float scale)
{
	constexpr int LD = HD + 1, LDP = ATT_BK + 1, CD = HD / ATT_TX;
	AIM_DYN_SMEM(float, sm);
	float *Qs = sm, *dOs = Qs + ATT_DQ_BQ * LD, *Ks = dOs + ATT_DQ_BQ * LD;
	float *Vs = Ks + ATT_BK * LD;
	float *dSs = Vs + ATT_BK * LD;
	const int tx = threadIdx.x % ATT_TX, ty = threadIdx.x / ATT_TX;
	const int ntiles = (K + ATT_DQ_BQ - 1) / ATT_DQ_BQ;
	const att_where w = att_block(ntiles, H);
	const int q0 = w.tile * ATT_DQ_BQ;
	const size_t D = (size_t)H * hd, stride = 3 * D;
	const float *head = qkv + (size_t)w.b * K * stride + (size_t)w.h * hd;
	/* dout rows are [B, K, H·hd]: stride D between tokens */
	const float *dohead = dout + (size_t)w.b * K * D + (size_t)w.h * hd;
	const size_t rowstat = ((size_t)w.b * H + w.h) * K;
	const int plen = att_plen(mask, prefix, w.b, K);

	att_load<HD>(Qs, LD, head, stride, q0, ATT_DQ_BQ, K, hd);
	att_load<HD>(dOs, LD, dohead, D, q0, ATT_DQ_BQ, K, hd);

	float lrow[ATT_DQ_RQ], drow[ATT_DQ_RQ], dq[ATT_DQ_RQ][CD];
#pragma unroll
	for (int r = 0; r < ATT_DQ_RQ; r++) {
		int i = q0 + ty * ATT_DQ_RQ + r;
		lrow[r] = i < K ? lse[rowstat + i] : 0.0f;
		drow[r] = i < K ? delta[rowstat + i] : 0.0f;
#pragma unroll
		for (int c = 0; c < CD; c++)
			dq[r][c] = 0.0f;
	}
	const int kend = att_limit(aim_imin(q0 + ATT_DQ_BQ, K) - 1, K, mask, plen);
	for (int k0 = 0; k0 < kend; k0 += ATT_BK) {
		__syncthreads();
		att_load<HD>(Ks, LD, head + D, stride, k0, ATT_BK, K, hd);
		att_load<HD>(Vs, LD, head + 2 * D, stride, k0, ATT_BK, K, hd);
		__syncthreads();

		float s[ATT_DQ_RQ][ATT_CK], dp[ATT_DQ_RQ][ATT_CK];
#pragma unroll
		for (int r = 0; r < ATT_DQ_RQ; r++)
#pragma unroll
			for (int c = 0; c < ATT_CK; c++)
				s[r][c] = dp[r][c] = 0.0f;
#pragma unroll 2
		for (int d = 0; d < HD; d++) {
			float q[ATT_DQ_RQ], g[ATT_DQ_RQ], k[ATT_CK], v[ATT_CK];
#pragma unroll
			for (int r = 0; r < ATT_DQ_RQ; r++) {
				q[r] = Qs[(ty * ATT_DQ_RQ + r) * LD + d];
				g[r] = dOs[(ty * ATT_DQ_RQ + r) * LD + d];
			}
#pragma unroll
			for (int c = 0; c < ATT_CK; c++) {
				k[c] = Ks[(tx + ATT_TX * c) * LD + d];
				v[c] = Vs[(tx + ATT_TX * c) * LD + d];
			}
#pragma unroll
			for (int r = 0; r < ATT_DQ_RQ; r++)
#pragma unroll
				for (int c = 0; c < ATT_CK; c++) {
					s[r][c] += q[r] * k[c];
					dp[r][c] += g[r] * v[c];
				}
		}
#pragma unroll
		for (int r = 0; r < ATT_DQ_RQ; r++) {
			const int i = q0 + ty * ATT_DQ_RQ + r;
			const int lim = i < K ? aim_imin(att_limit(i, K, mask, plen), K) : 0;
#pragma unroll
			for (int c = 0; c < ATT_CK; c++) {
				int j = k0 + tx + ATT_TX * c;
				float p = j < lim ? expf(s[r][c] * scale - lrow[r]) : 0.0f;
				dSs[(ty * ATT_DQ_RQ + r) * LDP + tx + ATT_TX * c] = p * (dp[r][c] - drow[r]);
			}
		}
		__syncthreads(); /* dSs complete */

#pragma unroll 2
		for (int j = 0; j < ATT_BK; j++) {
			float k[CD];
#pragma unroll
			for (int c = 0; c < CD; c++)
				k[c] = Ks[j * LD + tx + ATT_TX * c];
#pragma unroll
			for (int r = 0; r < ATT_DQ_RQ; r++) {
				float ds = dSs[(ty * ATT_DQ_RQ + r) * LDP + j];
#pragma unroll
				for (int c = 0; c < CD; c++)
					dq[r][c] += ds * k[c];
			}
		}
	}

#pragma unroll
	for (int r = 0; r < ATT_DQ_RQ; r++) {
		const int i = q0 + ty * ATT_DQ_RQ + r;
		if (i >= K)
			continue;
		float *dqrow = dqkv + ((size_t)w.b * K + i) * stride + (size_t)w.h * hd;
#pragma unroll
		for (int c = 0; c < CD; c++) {
			int d = tx + ATT_TX * c;
			if (d < hd)
				dqrow[d] += scale * dq[r][c];
		}
	}
}

/* ---- backward: dk, dv, a block per key tile -------------------------------- */

template <int HD> constexpr size_t att_dkv_smem()
{
	return sizeof(float) * ((size_t)(2 * ATT_KT + 2 * ATT_QT) * (HD + 1) +
				2 * ATT_KT * (ATT_QT + 1) + 2 * ATT_QT);
}

template <int HD>
__global__ void __launch_bounds__(ATT_THREADS)
att_dkv_kernel(float *dqkv, const float *dout, const float *qkv, const float *lse,
	       const float *delta, int K, int H, int hd, int mask, const int *prefix, float scale)
{
	constexpr int LD = HD + 1, LDQ = ATT_QT + 1, CD = HD / ATT_TX;
	AIM_DYN_SMEM(float, sm);
	float *Ks = sm, *Vs = Ks + ATT_KT * LD, *Qs = Vs + ATT_KT * LD, *dOs = Qs + ATT_QT * LD;
	float *Pt = dOs + ATT_QT * LD, *dSt = Pt + ATT_KT * LDQ;
	float *lq = dSt + ATT_KT * LDQ, *dlq = lq + ATT_QT; /* the step's lse, delta */
	const int tx = threadIdx.x % ATT_TX, ty = threadIdx.x / ATT_TX;
	const int ntiles = (K + ATT_KT - 1) / ATT_KT;
	const att_where w = att_block(ntiles, H);
	const int j0 = w.tile * ATT_KT;
	const size_t D = (size_t)H * hd, stride = 3 * D;
	const float *head = qkv + (size_t)w.b * K * stride + (size_t)w.h * hd;
	const float *dohead = dout + (size_t)w.b * K * D + (size_t)w.h * hd;
	const size_t rowstat = ((size_t)w.b * H + w.h) * K;
	const int plen = att_plen(mask, prefix, w.b, K);

	att_load<HD>(Ks, LD, head + D, stride, j0, ATT_KT, K, hd);
	att_load<HD>(Vs, LD, head + 2 * D, stride, j0, ATT_KT, K, hd);

	float dk[ATT_RK][CD], dv[ATT_RK][CD];
#pragma unroll
	for (int r = 0; r < ATT_RK; r++)
#pragma unroll
		for (int c = 0; c < CD; c++)
			dk[r][c] = dv[r][c] = 0.0f;

	/* Queries before the tile see none of its keys under a causal mask,
	 * unless the tile starts inside the sample's prefix. */
	const int istart = mask == AIM_MASK_NONE || j0 < plen ? 0 : j0 / ATT_QT * ATT_QT;
	for (int i0 = istart; i0 < K; i0 += ATT_QT) {
		__syncthreads(); /* the previous step is done with Qs, dOs, Pt, dSt */
		att_load<HD>(Qs, LD, head, stride, i0, ATT_QT, K, hd);
		att_load<HD>(dOs, LD, dohead, D, i0, ATT_QT, K, hd);
		for (int r = threadIdx.x; r < ATT_QT; r += ATT_THREADS) {
			int i = i0 + r;
			lq[r] = i < K ? lse[rowstat + i] : 0.0f;
			dlq[r] = i < K ? delta[rowstat + i] : 0.0f;
		}
		__syncthreads();

		float s[ATT_RK][ATT_CQ], dp[ATT_RK][ATT_CQ];
#pragma unroll
		for (int r = 0; r < ATT_RK; r++)
#pragma unroll
			for (int c = 0; c < ATT_CQ; c++)
				s[r][c] = dp[r][c] = 0.0f;
#pragma unroll 2
		for (int d = 0; d < HD; d++) {
			float k[ATT_RK], v[ATT_RK], q[ATT_CQ], g[ATT_CQ];
#pragma unroll
			for (int r = 0; r < ATT_RK; r++) {
				k[r] = Ks[(ty * ATT_RK + r) * LD + d];
				v[r] = Vs[(ty * ATT_RK + r) * LD + d];
			}
#pragma unroll
			for (int c = 0; c < ATT_CQ; c++) {
				q[c] = Qs[(tx + ATT_TX * c) * LD + d];
				g[c] = dOs[(tx + ATT_TX * c) * LD + d];
			}
#pragma unroll
			for (int r = 0; r < ATT_RK; r++)
#pragma unroll
				for (int c = 0; c < ATT_CQ; c++) {
					s[r][c] += k[r] * q[c];
					dp[r][c] += v[r] * g[c];
				}
		}
#pragma unroll
		for (int r = 0; r < ATT_RK; r++) {
			const int j = j0 + ty * ATT_RK + r;
#pragma unroll
			for (int c = 0; c < ATT_CQ; c++) {
				const int ci = tx + ATT_TX * c, i = i0 + ci;
				const bool vis = j < K && i < K && j < att_limit(i, K, mask, plen);
				float p = vis ? expf(s[r][c] * scale - lq[ci]) : 0.0f;
				Pt[(ty * ATT_RK + r) * LDQ + ci] = p;
				dSt[(ty * ATT_RK + r) * LDQ + ci] = p * (dp[r][c] - dlq[ci]);
			}
		}
		__syncthreads(); /* Pt, dSt complete */

#pragma unroll 2
		for (int i = 0; i < ATT_QT; i++) {
			float q[CD], g[CD];
#pragma unroll
			for (int c = 0; c < CD; c++) {
				q[c] = Qs[i * LD + tx + ATT_TX * c];
				g[c] = dOs[i * LD + tx + ATT_TX * c];
			}
#pragma unroll
			for (int r = 0; r < ATT_RK; r++) {
				float p = Pt[(ty * ATT_RK + r) * LDQ + i];
				float ds = dSt[(ty * ATT_RK + r) * LDQ + i];
#pragma unroll
				for (int c = 0; c < CD; c++) {
					dv[r][c] += p * g[c];
					dk[r][c] += ds * q[c];
				}
			}
		}
	}

#pragma unroll
	for (int r = 0; r < ATT_RK; r++) {
		const int j = j0 + ty * ATT_RK + r;
		if (j >= K)
			continue;
		float *dkrow = dqkv + ((size_t)w.b * K + j) * stride + D + (size_t)w.h * hd;
		float *dvrow = dkrow + D;
#pragma unroll
		for (int c = 0; c < CD; c++) {
			int d = tx + ATT_TX * c;
			if (d < hd) {
				dkrow[d] += scale * dk[r][c];
				dvrow[d] += dv[r][c];
			}
		}
	}
}

/* ---- any head dim: one warp per query row ---------------------------------- */

/* Two passes over the visible keys: the log-sum-exp, then out = Σ p v
 * accumulated in the output row itself (each lane owns columns lane+32t). */
__global__ void att_fwd_rows_kernel(float *out, float *lse, const float *qkv, int B, int K,
				    int H, int hd, int mask, const int *prefix, float scale)
{
	const size_t rows = (size_t)B * H * K;
	const size_t row = (size_t)blockIdx.x * (ATT_THREADS / 32) + threadIdx.x / 32;
	const int lane = threadIdx.x % 32;
	if (row >= rows)
		return;
	const int i = (int)(row % K), h = (int)(row / K % H), b = (int)(row / ((size_t)K * H));
	const size_t D = (size_t)H * hd, stride = 3 * D;
	const float *head = qkv + (size_t)b * K * stride + (size_t)h * hd;
	const float *q = head + (size_t)i * stride;
	const int lim = aim_imin(att_limit(i, K, mask, att_plen(mask, prefix, b, K)), K);
	float m = -INFINITY, l = 0.0f;
	for (int j = 0; j < lim; j++) {
		const float *k = head + (size_t)j * stride + D;
		float s = 0.0f;
		for (int d = lane; d < hd; d += 32)
			s += q[d] * k[d];
		s = aim_warp_sum(s) * scale;
		float mnew = fmaxf(m, s);
		l = l * expf(m - mnew) + expf(s - mnew);
		m = mnew;
	}
	const float ls = m + logf(l);
	float *o = out + ((size_t)b * K + i) * D + (size_t)h * hd;
	for (int d = lane; d < hd; d += 32)
		o[d] = 0.0f;
	for (int j = 0; j < lim; j++) {
		const float *k = head + (size_t)j * stride + D, *v = k + D;
		float s = 0.0f;
		for (int d = lane; d < hd; d += 32)
			s += q[d] * k[d];
		float p = expf(aim_warp_sum(s) * scale - ls);
		for (int d = lane; d < hd; d += 32)
			o[d] += p * v[d];
	}
	if (lse && lane == 0)
		lse[row] = ls; /* row enumerates [B, H, K] */
}

/* dq of the row directly; dk, dv of every visible key by atomics (this
 * path is for unusual head dims only). */
__global__ void att_bwd_rows_kernel(float *dqkv, const float *dout, const float *qkv,
				    const float *lse, const float *delta, int B, int K, int H,
				    int hd, int mask, const int *prefix, float scale)
{
	const size_t rows = (size_t)B * H * K;
	const size_t row = (size_t)blockIdx.x * (ATT_THREADS / 32) + threadIdx.x / 32;
	const int lane = threadIdx.x % 32;
	if (row >= rows)
		return;
	const int i = (int)(row % K), h = (int)(row / K % H), b = (int)(row / ((size_t)K * H));
	const size_t D = (size_t)H * hd, stride = 3 * D;
	const float *head = qkv + (size_t)b * K * stride + (size_t)h * hd;
	float *dhead = dqkv + (size_t)b * K * stride + (size_t)h * hd;
	const float *q = head + (size_t)i * stride;
	const float *g = dout + ((size_t)b * K + i) * D + (size_t)h * hd;
	float *dq = dhead + (size_t)i * stride;
	const int lim = aim_imin(att_limit(i, K, mask, att_plen(mask, prefix, b, K)), K);
	const float ls = lse[row], di = delta[row];
	for (int j = 0; j < lim; j++) {
		const float *k = head + (size_t)j * stride + D, *v = k + D;
		float s = 0.0f, dp = 0.0f;
		for (int d = lane; d < hd; d += 32) {
			s += q[d] * k[d];
			dp += g[d] * v[d];
		}
		s = aim_warp_sum(s);
		dp = aim_warp_sum(dp);
		const float p = expf(s * scale - ls), ds = p * (dp - di);
		float *dk = dhead + (size_t)j * stride + D, *dv = dk + D;
		for (int d = lane; d < hd; d += 32) {
			dq[d] += scale * ds * k[d];
			atomicAdd(dk + d, scale * ds * q[d]);
			atomicAdd(dv + d, p * g[d]);
		}
	}
}

/* ---- launchers --------------------------------------------------------------- */

/* Opt in to more than 48 KiB of dynamic shared memory, once per kernel. */
template <typename F> static void att_smem_attr(F kernel, size_t bytes, bool *done, const char *op)
{
	if (*done)
		return;
	AIM_CUDA_CHECK(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
						(int)bytes));
	*done = true;
}

template <int HD>
static void att_fwd_tiles(float *out, float *lse, const float *qkv, int B, int K, int H, int hd,
			  int mask, const int *prefix, float scale)
{
	static bool attr;
	const size_t smem = att_fwd_smem<HD>();
	att_smem_attr(att_fwd_kernel<HD>, smem, &attr, "attention_fwd");
	const size_t blocks = (size_t)((K + ATT_BQ - 1) / ATT_BQ) * H * B;
	AIM_LAUNCH(att_fwd_kernel<HD>, (unsigned)blocks, ATT_THREADS, smem, out, lse, qkv, K, H, hd,
		   mask, prefix, scale);
	aim_cuda_launched("attention_fwd");
}

template <int HD>
static void att_bwd_tiles(float *dqkv, const float *dout, const float *qkv, const float *lse,
			  const float *delta, int B, int K, int H, int hd, int mask,
			  const int *prefix, float scale)
{
	static bool attr_dq, attr_dkv;
	const size_t smem_dq = att_dq_smem<HD>(), smem_dkv = att_dkv_smem<HD>();
	att_smem_attr(att_dq_kernel<HD>, smem_dq, &attr_dq, "attention_bwd");
	att_smem_attr(att_dkv_kernel<HD>, smem_dkv, &attr_dkv, "attention_bwd");
	const size_t qblocks = (size_t)((K + ATT_DQ_BQ - 1) / ATT_DQ_BQ) * H * B;
	AIM_LAUNCH(att_dq_kernel<HD>, (unsigned)qblocks, ATT_THREADS, smem_dq, dqkv, dout, qkv, lse,
		   delta, K, H, hd, mask, prefix, scale);
	aim_cuda_launched("attention_bwd");
	const size_t kblocks = (size_t)((K + ATT_KT - 1) / ATT_KT) * H * B;
	AIM_LAUNCH(att_dkv_kernel<HD>, (unsigned)kblocks, ATT_THREADS, smem_dkv, dqkv, dout, qkv,
		   lse, delta, K, H, hd, mask, prefix, scale);
	aim_cuda_launched("attention_bwd");
}

size_t cuda_attention_smem(void)
{
	size_t m = att_fwd_smem<128>();
	m = att_dq_smem<128>() > m ? att_dq_smem<128>() : m;
	return att_dkv_smem<128>() > m ? att_dkv_smem<128>() : m;
}

static unsigned att_row_blocks(int B, int K, int H)
{
	const size_t rows = (size_t)B * K * H, per = ATT_THREADS / 32;
	return (unsigned)((rows + per - 1) / per);
}

void cuda_attention_fwd(float *out, float *lse, const float *qkv, int B, int K, int H, int hd,
			aim_mask_kind mask, const int *prefix)
{
	if (B <= 0 || K <= 0 || H <= 0 || hd <= 0)
		return;
	const int *p = mask == AIM_MASK_PREFIX && prefix
			       ? aim_cuda_ints(AIM_SCRATCH_PREFIX, prefix, B)
			       : NULL;
	const float scale = 1.0f / sqrtf((float)hd);
	if (hd <= 32)
		att_fwd_tiles<32>(out, lse, qkv, B, K, H, hd, mask, p, scale);
	else if (hd <= 64)
		att_fwd_tiles<64>(out, lse, qkv, B, K, H, hd, mask, p, scale);
	else if (hd <= 128)
		att_fwd_tiles<128>(out, lse, qkv, B, K, H, hd, mask, p, scale);
	else {
		AIM_LAUNCH(att_fwd_rows_kernel, att_row_blocks(B, K, H), ATT_THREADS, 0, out, lse,
			   qkv, B, K, H, hd, (int)mask, p, scale);
		aim_cuda_launched("attention_fwd");
	}
}

void cuda_attention_bwd(float *dqkv, const float *dout, const float *qkv, const float *out,
			const float *lse, int B, int K, int H, int hd, aim_mask_kind mask,
			const int *prefix)
{
	if (B <= 0 || K <= 0 || H <= 0 || hd <= 0)
		return;
	const int *p = mask == AIM_MASK_PREFIX && prefix
			       ? aim_cuda_ints(AIM_SCRATCH_PREFIX, prefix, B)
			       : NULL;
	const float scale = 1.0f / sqrtf((float)hd);
	float *delta = (float *)aim_cuda_scratch(AIM_SCRATCH_ATT_DELTA,
						  sizeof(float) * (size_t)B * H * K);
	AIM_LAUNCH(att_delta_kernel, att_row_blocks(B, K, H), ATT_THREADS, 0, delta, dout, out, B,
		   K, H, hd);
	aim_cuda_launched("attention_bwd");
	if (hd <= 32)
		att_bwd_tiles<32>(dqkv, dout, qkv, lse, delta, B, K, H, hd, mask, p, scale);
	else if (hd <= 64)
		att_bwd_tiles<64>(dqkv, dout, qkv, lse, delta, B, K, H, hd, mask, p, scale);
	else if (hd <= 128)
		att_bwd_tiles<128>(dqkv, dout, qkv, lse, delta, B, K, H, hd, mask, p, scale);
	else {
		AIM_LAUNCH(att_bwd_rows_kernel, att_row_blocks(B, K, H), ATT_THREADS, 0, dqkv, dout,
			   qkv, lse, delta, B, K, H, hd, (int)mask, p, scale);
		aim_cuda_launched("attention_bwd");
	}
}
