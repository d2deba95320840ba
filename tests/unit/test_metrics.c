/* Metrics against hand-computed cases: ties, top-5 with fewer than five
 * classes, unknown labels, cross-entropy, per-class accuracy, confused pairs. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "err.h"
#include "metrics.h"

static void ties(void)
{
	/* all equal: the lowest index ranks first */
	float row[4] = {1, 1, 1, 1};
	CHECK(aim_rank_of(row, 4, 0) == 0);
	CHECK(aim_rank_of(row, 4, 3) == 3);
	int idx[4];
	aim_topk(row, 4, 4, idx);
	CHECK(idx[0] == 0 && idx[1] == 1 && idx[2] == 2 && idx[3] == 3);
	/* ties among the best: 2 and 5 share the top logit, 2 wins */
	float r2[6] = {0, 1, 3, -1, 2, 3};
	aim_topk(r2, 6, 3, idx);
	CHECK(idx[0] == 2 && idx[1] == 5 && idx[2] == 4);
	CHECK(aim_rank_of(r2, 6, 5) == 1);
	/* NaN ranks below every number */
	float r3[3] = {NAN, -5, 0};
	CHECK(aim_rank_of(r3, 3, 0) == 2);
	aim_topk(r3, 3, 3, idx);
	CHECK(idx[0] == 2 && idx[1] == 1 && idx[2] == 0);
}

static void small_problem(void)
{
	/* 3 classes: top-5 is capped at 3, so every labelled sample counts */
	aim_metrics m;
	CHECK(aim_metrics_init(&m, 3) == 0);
	float logits[5 * 3] = {
		2, 1, 0,       /* label 0: correct */
		0, 0, 0,       /* label 1: tie, class 0 predicted -> wrong */
		0, 5, 1,       /* label 2: predicted 1, rank 1 */
		0, 0, 0,       /* label -1: unknown */
		1, 0, 0,       /* label 1: predicted 0 */
	};
	int64_t labels[5] = {0, 1, 2, -1, 1};
	CHECK(aim_metrics_add(&m, logits, labels, 5) == 0);
	CHECK(m.n == 4 && m.unknown == 1);
	CHECK_NEAR(aim_metrics_top1(&m), 25.0, 1e-12);
	CHECK_NEAR(aim_metrics_top5(&m), 100.0, 1e-12);
	/* cross-entropy by hand: -log softmax */
	double l0 = log(exp(2) + exp(1) + 1) - 2;
	double l1 = log(3.0);
	double l2 = log(1 + exp(5) + exp(1)) - 1;
	double l3 = log(exp(1) + 2) - 0;
	CHECK_NEAR(aim_metrics_loss(&m), (l0 + l1 + l2 + l3) / 4, 1e-9);
	CHECK_NEAR(aim_metrics_class_accuracy(&m, 0), 100.0, 1e-12);
	CHECK_NEAR(aim_metrics_class_accuracy(&m, 1), 0.0, 1e-12);
	CHECK_NEAR(aim_metrics_class_accuracy(&m, 2), 0.0, 1e-12);
	CHECK(aim_metrics_class_count(&m, 1) == 2);
	aim_confused_pair p[8];
	int n = aim_metrics_confused_pairs(&m, p, 8);
	CHECK(n == 2);
	CHECK(p[0].truth == 1 && p[0].predicted == 0 && p[0].count == 2);
	CHECK(p[1].truth == 2 && p[1].predicted == 1 && p[1].count == 1);
	CHECK(aim_metrics_confused_pairs(&m, p, 1) == 1 && p[0].truth == 1);
	/* a label outside the classes is an error, not a silent skip */
	int64_t bad = 3;
	CHECK(aim_metrics_add(&m, logits, &bad, 1) < 0);
	CHECK(strstr(aim_errmsg(), "label 3") != NULL);
	aim_metrics_free(&m);
}

static void top5(void)
{
	/* 7 classes: label ranked 4th (top-5 hit) and 6th (miss) */
	aim_metrics m;
	CHECK(aim_metrics_init(&m, 7) == 0);
	float logits[2 * 7] = {
		6, 5, 4, 3, 2, 1, 0,  /* label 4: rank 4 */
		6, 5, 4, 3, 2, 1, 0,  /* label 5: rank 5 */
	};
	int64_t labels[2] = {4, 5};
	CHECK(aim_metrics_add(&m, logits, labels, 2) == 0);
	CHECK_NEAR(aim_metrics_top1(&m), 0.0, 1e-12);
	CHECK_NEAR(aim_metrics_top5(&m), 50.0, 1e-12);
	/* empty class: NaN accuracy */
	CHECK(isnan(aim_metrics_class_accuracy(&m, 6)));
	/* ties of counts among pairs: lower true class first */
	aim_confused_pair p[4];
	CHECK(aim_metrics_confused_pairs(&m, p, 4) == 2);
	CHECK(p[0].truth == 4 && p[1].truth == 5);
	aim_metrics_free(&m);
	/* nothing labelled: NaN everywhere */
	CHECK(aim_metrics_init(&m, 2) == 0);
	CHECK(isnan(aim_metrics_top1(&m)) && isnan(aim_metrics_loss(&m)));
	aim_metrics_free(&m);
}

int main(void)
{
	ties();
	small_problem();
	top5();
	return check_summary("test_metrics");
}
