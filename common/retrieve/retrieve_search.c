/* Exact maximum inner product search.
 *
 * The bank is cut into blocks of rows that the threads take in turn as they
 * come free; each thread keeps its own top-k heaps, and the per-thread
 * lists are merged at the end. A block of queries times a block of bank
 * rows is one single-threaded sgemm, and the scores are consumed at once by
 * the selection while they are still in cache.
 * Few queries (a query answered as it arrives) use sgemv instead, which
 * reads each bank row exactly once: that path is bound by memory bandwidth.
 *
 * Selection keeps, per query, a heap whose root is the worst hit kept; a
 * score is looked at twice only when it beats the root, which after the
 * first few blocks is rare, so the scan costs one compare per score. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"
#include "err.h"
#include "gemm.h"
#include "retrieve.h"

enum {
	BANK_BLOCK = 4096,  /* bank rows per sgemm: 12 MB of a 768-d bank */
	QUERY_BLOCK = 1024, /* queries per sgemm (scores: 16 MB per thread) */
	GEMV_BLOCK = 1024,  /* bank rows per sgemv task */
	GEMM_MIN = 4,       /* fewer queries than this: sgemv per query */
};

typedef struct {
	aim_hit *h; /* k slots */
	int n;
} topk;

/* a is worse than b: lower score, or the same score and a higher row. */
static inline int worse(const aim_hit *a, const aim_hit *b)
{
	return aim_hit_better(b->score, b->row, a->score, a->row);
}

static void sift_down(aim_hit *h, int n, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, w = i;
		if (l < n && worse(&h[l], &h[w]))
			w = l;
		if (r < n && worse(&h[r], &h[w]))
			w = r;
		if (w == i)
			return;
		aim_hit t = h[i];
		h[i] = h[w];
		h[w] = t;
		i = w;
	}
}

static void topk_push(topk *t, int k, float s, int64_t row)
{
	if (t->n < k) {
		int i = t->n++;
		t->h[i] = (aim_hit){s, row};
		while (i > 0) {
			int p = (i - 1) / 2;
			if (!worse(&t->h[i], &t->h[p]))
				break;
			aim_hit x = t->h[i];
			t->h[i] = t->h[p];
			t->h[p] = x;
			i = p;
		}
	} else if (aim_hit_better(s, row, t->h[0].score, t->h[0].row)) {
		t->h[0] = (aim_hit){s, row};
		sift_down(t->h, k, 0);
	}
}

static int same_name(const aim_bank *b, int64_t row, const aim_query_ident *qi, int64_t q)
{
	if (b->names && qi->name && qi->name[q])
		return !strcmp(b->names + b->name_off[row], qi->name[q]);
	return qi->id && b->id[row] == qi->id[q];
}

/* Offer one query's scores for bank rows [r0, r0+nb) to its heap. */
static void select_block(topk *t, const float *s, int64_t r0, int64_t nb, const aim_bank *b,
			 const aim_search_opts *o, const aim_query_ident *qi, int64_t q)
{
	int k = o->k;
	int filtered = o->max_score < INFINITY || o->labelled_only || o->exclude_self;
	float thr = t->n < k ? -INFINITY : t->h[0].score;
	for (int64_t j = 0; j < nb; j++) {
		if (s[j] < thr)
			continue;
		int64_t row = r0 + j;
		if (filtered) {
			if (s[j] > o->max_score)
				continue;
			if (o->labelled_only && b->label[row] < 0)
				continue;
			if (o->exclude_self && same_name(b, row, qi, q))
				continue;
		}
		topk_push(t, k, s[j], row);
		if (t->n == k)
			thr = t->h[0].score;
	}
}

/* Dot product in double, rounded once. */
static float exact_dot(const float *a, const float *b, int64_t d)
{
	double s = 0;
	for (int64_t i = 0; i < d; i++)
		s += (double)a[i] * b[i];
	return (float)s;
}

static int cmp_hit(const void *pa, const void *pb)
{
	const aim_hit *a = pa, *b = pb;
	return aim_hit_better(a->score, a->row, b->score, b->row) ? -1
	       : aim_hit_better(b->score, b->row, a->score, a->row) ? 1 : 0;
}

int aim_bank_search(const aim_bank *b, const float *q, int64_t m, const aim_search_opts *o,
		    const aim_query_ident *qi, aim_hit *out)
{
	int T = o->threads > 0 ? o->threads : 1;
	int64_t D = b->dim, k = o->k;
	if ((int64_t)T > b->n)
		T = (int)b->n;
	if (m == 0)
		return 0;
	if (T == 0) { /* an empty shard */
		for (int64_t i = 0; i < m * k; i++)
			out[i] = (aim_hit){-INFINITY, -1};
		return 0;
	}
	aim_hit *slots = malloc(sizeof(aim_hit) * (size_t)(T * m * k));
	topk *heaps = calloc((size_t)(T * m), sizeof(topk));
	if (!slots || !heaps) {
		free(slots), free(heaps);
		return aim_error("out of memory (top-%lld of %lld queries)", (long long)k, (long long)m);
	}
	for (int64_t i = 0; i < T * m; i++)
		heaps[i].h = slots + i * k;
	/* Each of our threads runs its own single-threaded BLAS call. */
	int held = aim_blas_hold_single();
	int failed = 0;
	/* Few queries: smaller blocks, so the work spreads evenly over threads. */
	int64_t bb = m < GEMM_MIN ? GEMV_BLOCK : BANK_BLOCK;
	int64_t nblocks = (b->n + bb - 1) / bb;
#pragma omp parallel num_threads(T)
	{
		int t = omp_get_thread_num();
		int64_t qb = m < QUERY_BLOCK ? m : QUERY_BLOCK;
		float *S = malloc(sizeof(float) * (size_t)(qb * bb));
		topk *mine = heaps + (int64_t)t * m;
		if (!S) {
#pragma omp atomic write
			failed = 1;
		}
		/* Blocks are handed out as threads come free: on a shared machine
		 * a thread whose core is busy elsewhere must not hold up the rest. */
#pragma omp for schedule(dynamic, 1)
		for (int64_t g = 0; g < nblocks; g++) {
			int64_t r0 = g * bb, nb = b->n - r0 < bb ? b->n - r0 : bb;
			const float *X = b->vec + r0 * D;
			for (int64_t q0 = 0; S && q0 < m; q0 += qb) {
				int64_t mb = m - q0 < qb ? m - q0 : qb;
				if (mb >= GEMM_MIN)
					aim_sgemm(0, 1, (int)mb, (int)nb, (int)D, 1.0f, q + q0 * D,
						  (int)D, X, (int)D, 0.0f, S, (int)nb);
				else
					for (int64_t i = 0; i < mb; i++)
						cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nb, (int)D, 1.0f,
							    X, (int)D, q + (q0 + i) * D, 1, 0.0f, S + i * nb, 1);
				for (int64_t i = 0; i < mb; i++)
					select_block(&mine[q0 + i], S + i * nb, r0, nb, b, o, qi, q0 + i);
			}
		}
		free(S);
	}
	aim_blas_release(held);
	if (failed) {
		free(slots), free(heaps);
		return aim_error("out of memory (score blocks)");
	}
	/* Merge the per-thread lists of each query, and rescore the winners
	 * with one fixed summation order: BLAS may sum a dot product in a
	 * different order depending on where a row falls in a block, and the
	 * answer must not depend on blocks, threads or shards. */
	aim_hit *all = malloc(sizeof(aim_hit) * (size_t)(T * k));
	if (!all) {
		free(slots), free(heaps);
		return aim_error("out of memory");
	}
	for (int64_t i = 0; i < m; i++) {
		int n = 0;
		for (int t = 0; t < T; t++) {
			const topk *h = &heaps[(int64_t)t * m + i];
			memcpy(all + n, h->h, sizeof(aim_hit) * (size_t)h->n);
			n += h->n;
		}
		for (int j = 0; j < n; j++)
			all[j].score = exact_dot(q + i * D, b->vec + all[j].row * D, D);
		qsort(all, (size_t)n, sizeof(aim_hit), cmp_hit);
		for (int64_t j = 0; j < k; j++)
			out[i * k + j] = j < n ? all[j] : (aim_hit){-INFINITY, -1};
	}
	free(all), free(slots), free(heaps);
	return 0;
}

static float dot(const float *a, const float *b, int64_t d)
{
	float s = 0;
	for (int64_t i = 0; i < d; i++)
		s += a[i] * b[i];
	return s;
}

int aim_diverse_pick(const aim_bank *b, const aim_hit *cand, int ncand, int k, float thr,
		     aim_hit *out)
{
	int n = 0;
	for (int c = 0; c < ncand && n < k; c++) {
		if (cand[c].row < 0)
			break;
		const float *v = b->vec + cand[c].row * b->dim;
		int ok = 1;
		for (int j = 0; j < n && ok; j++)
			ok = dot(v, b->vec + out[j].row * b->dim, b->dim) <= thr;
		if (ok)
			out[n++] = cand[c];
	}
	return n;
}

int aim_bank_search_diverse(const aim_bank *b, const float *q, int64_t m,
			    const aim_search_opts *o, float diverse, const aim_query_ident *qi,
			    aim_hit *out)
{
	if (isnan(diverse))
		return aim_bank_search(b, q, m, o, qi, out);
	aim_search_opts so = *o;
	int64_t want = (int64_t)o->k * 4 < 64 ? 64 : (int64_t)o->k * 4;
	so.k = (int)(want < b->n ? want : b->n);
	aim_hit *cand = malloc(sizeof(aim_hit) * (size_t)(m * so.k));
	if (!cand)
		return aim_error("out of memory");
	if (aim_bank_search(b, q, m, &so, qi, cand)) {
		free(cand);
		return AIM_ERR;
	}
	for (int64_t i = 0; i < m; i++) {
		aim_hit *c = cand + i * so.k, *wide = NULL;
		int nc = so.k;
		int got = aim_diverse_pick(b, c, nc, o->k, diverse, out + i * o->k);
		aim_query_ident one = {qi->id ? qi->id + i : NULL, qi->name ? qi->name + i : NULL};
		while (got < o->k && nc < b->n) {
			aim_search_opts w = so;
			w.k = (int)((int64_t)nc * 4 < b->n ? nc * 4 : b->n);
			free(wide);
			wide = malloc(sizeof(aim_hit) * (size_t)w.k);
			if (!wide || aim_bank_search(b, q + i * b->dim, 1, &w, &one, wide)) {
				if (!wide)
					aim_error("out of memory");
				free(wide);
				free(cand);
				return AIM_ERR;
			}
			nc = w.k;
			got = aim_diverse_pick(b, wide, nc, o->k, diverse, out + i * o->k);
		}
		free(wide);
		for (int j = got; j < o->k; j++)
			out[i * o->k + j] = (aim_hit){-INFINITY, -1};
	}
	free(cand);
	return AIM_OK;
}
