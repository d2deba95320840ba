/* Retrieval internals against brute force: top-k selection over threads,
 * block edges and ties; the filters; diversity; dropout draws; the k-NN
 * rank; merge of result sets. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "err.h"
#include "retrieve.h"

static float frand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return ((*s >> 8) & 0xFFFF) / 65536.0f - 0.5f;
}

/* Brute force: all rows sorted by (score desc, row asc). */
static void brute(const aim_bank *b, const float *q, int k, aim_hit *out, float max_score)
{
	aim_hit *all = malloc(sizeof(aim_hit) * (size_t)b->n);
	int n = 0;
	for (int64_t r = 0; r < b->n; r++) {
		float s = 0;
		for (int64_t j = 0; j < b->dim; j++)
			s += q[j] * b->vec[r * b->dim + j];
		if (s <= max_score)
			all[n++] = (aim_hit){s, r};
	}
	for (int i = 0; i < k && i < n; i++) { /* selection sort of the first k */
		int best = i;
		for (int j = i + 1; j < n; j++)
			if (aim_hit_better(all[j].score, all[j].row, all[best].score, all[best].row))
				best = j;
		aim_hit t = all[i];
		all[i] = all[best];
		all[best] = t;
		out[i] = all[i];
	}
	for (int i = n; i < k; i++)
		out[i] = (aim_hit){-INFINITY, -1};
	free(all);
}

static void test_search(void)
{
	/* 9000 rows: blocks of 4096 leave a ragged tail; a dimension of 5
	 * with values on a coarse grid makes many exact ties. */
	int64_t n = 9000, d = 5, m = 9;
	float *v = malloc(sizeof(float) * (size_t)(n * d)), *q = malloc(sizeof(float) * (size_t)(m * d));
	int64_t *id = malloc(sizeof(int64_t) * (size_t)n);
	unsigned seed = 7;
	for (int64_t i = 0; i < n * d; i++)
		v[i] = roundf(frand(&seed) * 4);
	for (int64_t i = 0; i < m * d; i++)
		q[i] = roundf(frand(&seed) * 4);
	for (int64_t i = 0; i < n; i++)
		id[i] = i;
	aim_bank b = {0};
	b.n = n, b.dim = d, b.vec = v, b.id = id;
	int ks[] = {1, 10, 64};
	for (int ki = 0; ki < 3; ki++) {
		int k = ks[ki];
		aim_hit *got = malloc(sizeof(aim_hit) * (size_t)(m * k)), *want = malloc(sizeof(aim_hit) * (size_t)k);
		for (int threads = 1; threads <= 3; threads++)
			for (int mm = 1; mm <= m; mm += m - 1) { /* sgemv path (1) and sgemm (9) */
				aim_search_opts o = {k, INFINITY, 0, 0, threads};
				CHECK(aim_bank_search(&b, q, mm, &o, NULL, got) == 0);
				for (int64_t i = 0; i < mm; i++) {
					brute(&b, q + i * d, k, want, INFINITY);
					for (int j = 0; j < k; j++)
						CHECK_MSG(got[i * k + j].row == want[j].row &&
								  got[i * k + j].score == want[j].score,
							  "k %d threads %d m %d query %lld rank %d: row %lld vs %lld",
							  k, threads, (int)mm, (long long)i, j,
							  (long long)got[i * k + j].row, (long long)want[j].row);
				}
			}
		/* max-score: nothing above the cut, and the next best fill in */
		aim_search_opts o = {k, 1.5f, 0, 0, 2};
		CHECK(aim_bank_search(&b, q, m, &o, NULL, got) == 0);
		for (int64_t i = 0; i < m; i++) {
			brute(&b, q + i * d, k, want, 1.5f);
			for (int j = 0; j < k; j++)
				CHECK(got[i * k + j].row == want[j].row);
		}
		free(got), free(want);
	}
	/* exclude-self by id: query = bank row 17 */
	aim_hit h[3];
	int64_t qid = 17;
	aim_query_ident qi = {&qid, NULL};
	aim_search_opts o = {3, INFINITY, 0, 1, 2};
	CHECK(aim_bank_search(&b, v + 17 * d, 1, &o, &qi, h) == 0);
	for (int j = 0; j < 3; j++)
		CHECK(h[j].row != 17);
	o.exclude_self = 0;
	CHECK(aim_bank_search(&b, v + 17 * d, 1, &o, &qi, h) == 0);
	int seen = 0;
	for (int j = 0; j < 3; j++)
		seen |= h[j].row == 17;
	CHECK(seen || h[2].score == h[0].score); /* itself, unless tied out */
	/* k larger than the bank leaves empty slots */
	aim_bank small = b;
	small.n = 4;
	aim_hit e[6];
	aim_search_opts o6 = {6, INFINITY, 0, 0, 3};
	CHECK(aim_bank_search(&small, q, 1, &o6, NULL, e) == 0);
	CHECK(e[3].row >= 0 && e[4].row == -1 && e[5].row == -1 && isinf(e[5].score));
	/* diversity: identical rows are never both chosen */
	float dv[4 * 2] = {1, 0, 1, 0, 0.6f, 0.8f, 0, 1};
	int64_t did[4] = {0, 1, 2, 3};
	aim_bank db = {0};
	db.n = 4, db.dim = 2, db.vec = dv, db.id = did;
	aim_hit cand[4] = {{1, 0}, {1, 1}, {0.6f, 2}, {0, 3}}, out[3];
	CHECK(aim_diverse_pick(&db, cand, 4, 3, 0.9f, out) == 3);
	CHECK(out[0].row == 0 && out[1].row == 2 && out[2].row == 3);
	CHECK(aim_diverse_pick(&db, cand, 4, 3, 0.5f, out) == 2); /* 0.6 > 0.5: row 2 skipped */
	free(v), free(q), free(id);
}

static void test_dropout(void)
{
	int64_t keep[16], keep2[16];
	CHECK(aim_dropout_keep(1, 0, 16, 0.25, keep) == 12);
	CHECK(aim_dropout_keep(1, 0, 16, 0.0, keep) == 16);
	CHECK(aim_dropout_keep(1, 0, 3, 0.99, keep) == 1);
	int64_t n = aim_dropout_keep(5, 3, 16, 0.5, keep);
	CHECK(n == 8);
	int used[16] = {0}, dup = 0;
	for (int i = 0; i < n; i++)
		dup |= keep[i] < 0 || keep[i] >= 16 || used[keep[i]]++;
	CHECK(!dup);
	aim_dropout_keep(5, 3, 16, 0.5, keep2);
	CHECK(!memcmp(keep, keep2, sizeof(int64_t) * 8));
	aim_dropout_keep(5, 4, 16, 0.5, keep2);
	CHECK(memcmp(keep, keep2, sizeof(int64_t) * 8) != 0);
}

static void test_knn(void)
{
	double work[4];
	float s[4] = {0.9f, 0.8f, 0.7f, 0.1f};
	int64_t l[4] = {2, 1, 1, 0};
	/* T = 1: class 1 has e^0.8 + e^0.7 > e^0.9 */
	CHECK(aim_knn_rank(s, l, 4, 1.0, 1, 3, work) == 0);
	CHECK(aim_knn_rank(s, l, 4, 1.0, 2, 3, work) == 1);
	CHECK(aim_knn_rank(s, l, 4, 1.0, 0, 3, work) == 2);
	/* T small: the nearest neighbour dominates */
	CHECK(aim_knn_rank(s, l, 4, 0.01, 2, 3, work) == 0);
	/* a class without votes is never predicted */
	CHECK(aim_knn_rank(s, l, 3, 1.0, 0, 3, work) == INT64_MAX);
	int64_t l2[4] = {-1, -1, 1, 3};
	CHECK(aim_knn_rank(s, l2, 4, 1.0, 1, 4, work) == 0); /* unlabelled: no vote */
	CHECK(aim_knn_rank(s, l2, 4, 1.0, 3, 4, work) == 1);
}

static void test_merge(void)
{
	aim_results p[2], out;
	const char *what[2] = {"a", "b"};
	for (int i = 0; i < 2; i++) {
		CHECK(aim_results_alloc(&p[i], 1, 2, 0, 1) == 0);
		p[i].qname[0] = strdup("q");
	}
	float sa[2] = {0.9f, 0.5f}, sb[2] = {0.9f, 0.7f};
	int64_t ka[2] = {5, 1}, kb[2] = {3, 8};
	for (int j = 0; j < 2; j++) {
		p[0].score[j] = sa[j], p[0].nkey[j] = p[0].nid[j] = ka[j], p[0].nlabel[j] = 10 + j;
		p[1].score[j] = sb[j], p[1].nkey[j] = p[1].nid[j] = kb[j], p[1].nlabel[j] = 20 + j;
		p[0].nname[j] = strdup("x");
		p[1].nname[j] = strdup("y");
	}
	CHECK(aim_results_merge(&out, p, 2, 3, what) == 0);
	/* 0.9 tie: key 3 before key 5; then 0.7 */
	CHECK(out.nkey[0] == 3 && out.nkey[1] == 5 && out.nkey[2] == 8);
	CHECK(out.nlabel[0] == 20 && out.nlabel[1] == 10 && !strcmp(out.nname[1], "x"));
	aim_results_free(&out);
	free(p[1].qname[0]);
	p[1].qname[0] = strdup("other");
	CHECK(aim_results_merge(&out, p, 2, 3, what) == AIM_ERR);
	aim_results_free(&p[0]), aim_results_free(&p[1]);
}

int main(void)
{
	test_search();
	test_dropout();
	test_knn();
	test_merge();
	return check_summary("test_retrieve");
}
