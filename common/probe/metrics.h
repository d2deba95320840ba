/* Classification metrics over a stream of logits and labels: top-1 and
 * top-5 accuracy, mean cross-entropy, per-class accuracy, the confusion
 * matrix and its most confused pairs.
 *
 * Ranking is deterministic: class j ranks above class i when its logit is
 * larger, or equal and j < i (the lower index wins a tie); NaN ranks below
 * every number. A sample is top-k correct when its label's rank is below
 * k, with k capped at the number of classes (as the published
 * utils.accuracy does: top-5 of a 3-class problem is top-3). Labels of -1
 * mean "unknown": such samples are counted apart and enter no metric. */
#ifndef AIM_METRICS_H
#define AIM_METRICS_H

#include <stdint.h>

typedef struct {
	int classes;
	int64_t n;          /* labelled samples counted */
	int64_t unknown;    /* samples with label -1 */
	int64_t correct1, correct5;
	double loss_sum;    /* Σ cross-entropy (no smoothing) */
	int64_t *confusion; /* [classes × classes]: row = true, column = predicted */
} aim_metrics;

int aim_metrics_init(aim_metrics *m, int classes);
void aim_metrics_free(aim_metrics *m);
/* Add B rows of logits [B, classes] with labels [B]. A label outside
 * [-1, classes) is an error (message names the label). */
int aim_metrics_add(aim_metrics *m, const float *logits, const int64_t *labels, int64_t B);

/* Rank of class y in one row of logits (0 = top prediction). */
int aim_rank_of(const float *row, int C, int y);
/* The k best classes of a row in rank order (k <= C). */
void aim_topk(const float *row, int C, int k, int *idx);

/* Percentages and mean loss; NaN when n == 0. */
double aim_metrics_top1(const aim_metrics *m);
double aim_metrics_top5(const aim_metrics *m);
double aim_metrics_loss(const aim_metrics *m);
/* Accuracy (percent) of class c over its labelled samples; NaN if none. */
double aim_metrics_class_accuracy(const aim_metrics *m, int c);
int64_t aim_metrics_class_count(const aim_metrics *m, int c);

typedef struct {
	int truth, predicted;
	int64_t count;
} aim_confused_pair;
/* Off-diagonal cells with a count > 0, largest first (ties: lower true
 * class, then lower predicted class first); at most max. Returns how many. */
int aim_metrics_confused_pairs(const aim_metrics *m, aim_confused_pair *out, int max);

#endif
