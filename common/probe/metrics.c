/* Classification metrics; see metrics.h for the ranking rule. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

int aim_metrics_init(aim_metrics *m, int classes)
{
	memset(m, 0, sizeof *m);
	if (classes <= 0)
		return aim_error("metrics: %d classes", classes);
	m->classes = classes;
	m->confusion = calloc((size_t)classes * classes, sizeof *m->confusion);
	if (!m->confusion)
		return aim_error("metrics: out of memory for a %d x %d confusion matrix",
				 classes, classes);
	return AIM_OK;
}

void aim_metrics_free(aim_metrics *m)
{
	free(m->confusion);
	memset(m, 0, sizeof *m);
}

/* 1 if class a ranks above class b in row (see metrics.h). */
static int ranks_above(const float *row, int a, int b)
{
	float x = row[a], y = row[b];
	if (isnan(x))
		return isnan(y) && a < b;
	if (isnan(y))
		return 1;
	return x > y || (x == y && a < b);
}

int aim_rank_of(const float *row, int C, int y)
{
	int r = 0;
	for (int j = 0; j < C; j++)
		r += j != y && ranks_above(row, j, y);
	return r;
}

void aim_topk(const float *row, int C, int k, int *idx)
{
	int n = 0;
	for (int j = 0; j < C; j++) {
		/* insertion into the sorted list of the best n so far */
		int pos = n < k ? n : k;
		while (pos > 0 && ranks_above(row, j, idx[pos - 1]))
			pos--;
		if (pos >= k)
			continue;
		int last = n < k ? n : k - 1;
		for (int i = last; i > pos; i--)
			idx[i] = idx[i - 1];
		idx[pos] = j;
		if (n < k)
			n++;
	}
}

/* Cross-entropy of one row, −log softmax(row)[y], in double. */
static double row_ce(const float *row, int C, int y)
{
	double mx = -INFINITY;
	for (int j = 0; j < C; j++)
		if (row[j] > mx)
			mx = row[j];
	double s = 0;
	for (int j = 0; j < C; j++)
		s += exp(row[j] - mx);
	return mx + log(s) - row[y];
}

int aim_metrics_add(aim_metrics *m, const float *logits, const int64_t *labels, int64_t B)
{
	int C = m->classes, k5 = C < 5 ? C : 5;
	for (int64_t b = 0; b < B; b++)
		if (labels[b] < -1 || labels[b] >= C)
			return aim_error("label %lld outside the %d classes", (long long)labels[b], C);
	for (int64_t b = 0; b < B; b++) {
		int64_t y = labels[b];
		if (y < 0) {
			m->unknown++;
			continue;
		}
		const float *row = logits + b * C;
		int rank = aim_rank_of(row, C, (int)y);
		int top;
		aim_topk(row, C, 1, &top);
		m->n++;
		m->correct1 += rank < 1;
		m->correct5 += rank < k5;
		m->loss_sum += row_ce(row, C, (int)y);
		m->confusion[y * C + top]++;
	}
	return AIM_OK;
}

double aim_metrics_top1(const aim_metrics *m)
{
	return m->n ? 100.0 * (double)m->correct1 / (double)m->n : NAN;
}

double aim_metrics_top5(const aim_metrics *m)
{
	return m->n ? 100.0 * (double)m->correct5 / (double)m->n : NAN;
}

double aim_metrics_loss(const aim_metrics *m)
{
	return m->n ? m->loss_sum / (double)m->n : NAN;
}

int64_t aim_metrics_class_count(const aim_metrics *m, int c)
{
	int64_t s = 0;
	for (int j = 0; j < m->classes; j++)
		s += m->confusion[(int64_t)c * m->classes + j];
	return s;
}

double aim_metrics_class_accuracy(const aim_metrics *m, int c)
{
	int64_t n = aim_metrics_class_count(m, c);
	return n ? 100.0 * (double)m->confusion[(int64_t)c * m->classes + c] / (double)n : NAN;
}

static int pair_cmp(const void *pa, const void *pb)
{
	const aim_confused_pair *a = pa, *b = pb;
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	if (a->truth != b->truth)
		return a->truth < b->truth ? -1 : 1;
	return (a->predicted > b->predicted) - (a->predicted < b->predicted);
}

int aim_metrics_confused_pairs(const aim_metrics *m, aim_confused_pair *out, int max)
{
	int C = m->classes, n = 0;
	if (max <= 0)
		return 0;
	/* keep the best `max` in out, sorted, replacing the worst when full */
	for (int t = 0; t < C; t++)
		for (int p = 0; p < C; p++) {
			int64_t cnt = m->confusion[(int64_t)t * C + p];
			if (t == p || cnt == 0)
				continue;
			aim_confused_pair cand = {t, p, cnt};
			if (n == max && pair_cmp(&cand, &out[n - 1]) >= 0)
				continue;
			int pos = n < max ? n++ : max - 1;
			while (pos > 0 && pair_cmp(&cand, &out[pos - 1]) < 0) {
				out[pos] = out[pos - 1];
				pos--;
			}
			out[pos] = cand;
		}
	return n;
}
