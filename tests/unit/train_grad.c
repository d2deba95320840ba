/* Finite-difference checks of the pretraining pieces aim-train owns: the
 * pixel head's backward (every parameter and the input) and the
 * normalised-pixel loss's backward, plus the LR schedule's shape and the
 * counter-based prefix lengths. Central differences in float with a step
 * of 1e-2 on a tiny head; each analytic gradient must agree to 2 % of the
 * tensor's largest gradient. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train_head.h"
#include "train_loss.h"
#include "train_optim.h"
#include "train_rng.h"

enum { B = 2, ROWS = 2, COLS = 3, K = ROWS * COLS, D = 8, W = 12, NB = 2, P = 5 };

static float *R; /* fixed random weights of the scalar objective */

/* Objective: L = Σ pred ⊙ R, so dL/dpred = R. */
static double objective(aim_pixel_head *h, const float *in, float *pred)
{
	aim_pixel_head_forward(h, pred, in, B * K, NULL);
	double s = 0;
	for (int i = 0; i < B * K * P; i++)
		s += (double)pred[i] * R[i];
	return s;
}

static void check_tensor(const char *name, float *x, const float *g, long n,
			 double (*f)(void *), void *ctx)
{
	double gmax = 1e-6, worst = 0;
	for (long i = 0; i < n; i++)
		gmax = fmax(gmax, fabs(g[i]));
	/* A sample of the entries keeps the test fast. */
	for (long i = 0; i < n; i += 1 + n / 40) {
		float save = x[i];
		const float e = 1e-2f;
		x[i] = save + e;
		double fp = f(ctx);
		x[i] = save - e;
		double fm = f(ctx);
		x[i] = save;
		double num = (fp - fm) / (2 * e);
		worst = fmax(worst, fabs(num - g[i]) / gmax);
	}
	CHECK_MSG(worst < 2e-2, "%s: worst FD error %.3g of max |grad| %.3g", name, worst, gmax);
}

typedef struct {
	aim_pixel_head *h;
	float *in, *pred;
} head_ctx;

static double head_f(void *c)
{
	head_ctx *hc = c;
	return objective(hc->h, hc->in, hc->pred);
}

static void test_head(void)
{
	aim_pixel_head h;
	CHECK(aim_pixel_head_new(&h, D, W, NB, P, ROWS, COLS) == 0);
	aim_rng rng;
	aim_rng_init(&rng, 5, 9);
	aim_pixel_head_init_random(&h, &rng);
	/* Non-trivial norms and biases so their gradients are exercised. */
	for (long i = 0; i < h.nparams; i++)
		h.params[i] += 0.2f * (aim_rng_uniformf(&rng) - 0.5f);
	float *in = malloc(sizeof(float) * B * K * D), *din = calloc(B * K * D, sizeof(float));
	float *pred = malloc(sizeof(float) * B * K * P);
	R = malloc(sizeof(float) * B * K * P);
	aim_rng_fill_uniform(&rng, in, B * K * D, 1.0f);
	aim_rng_fill_uniform(&rng, R, B * K * P, 1.0f);

	objective(&h, in, pred);
	memset(h.grads, 0, sizeof(float) * h.nparams);
	aim_pixel_head_backward(&h, din, R, in);
	float *grads = malloc(sizeof(float) * h.nparams);
	memcpy(grads, h.grads, sizeof(float) * h.nparams);

	head_ctx c = {&h, in, pred};
	char name[128];
	for (int i = 0; i < h.nt; i++) {
		snprintf(name, sizeof name, "pixel_head.%s", h.t[i].suffix);
		check_tensor(name, h.params + h.t[i].off, grads + h.t[i].off, h.t[i].n, head_f, &c);
	}
	check_tensor("pixel head input", in, din, B * K * D, head_f, &c);

	/* Backward accumulates: a second call doubles every gradient. */
	objective(&h, in, pred);
	aim_pixel_head_backward(&h, din, R, in);
	double err = 0;
	for (long i = 0; i < h.nparams; i++)
		err = fmax(err, fabs(h.grads[i] - 2 * grads[i]) / (1 + fabs(grads[i])));
	CHECK_MSG(err < 1e-5, "gradients do not accumulate (err %g)", err);

	/* A subset of rows with their grid positions gives the same rows. */
	int pos[3] = {1, K - 1, 2};
	long pick[3] = {1, K - 1, K + 2};
	float sub_in[3 * D], sub_pred[3 * P];
	for (int i = 0; i < 3; i++)
		memcpy(sub_in + i * D, in + pick[i] * D, sizeof(float) * D);
	objective(&h, in, pred);
	float full_row[3 * P];
	for (int i = 0; i < 3; i++)
		memcpy(full_row + i * P, pred + pick[i] * P, sizeof(float) * P);
	CHECK(aim_pixel_head_forward(&h, sub_pred, sub_in, 3, pos) == 0);
	double d = 0;
	for (int i = 0; i < 3 * P; i++)
		d = fmax(d, fabs(sub_pred[i] - full_row[i]));
	CHECK_MSG(d < 1e-5, "rows with positions differ from whole images by %g", d);

	free(grads);
	free(in);
	free(din);
	free(pred);
	free(R);
	aim_pixel_head_free(&h);
}

typedef struct {
	float *pred, *target;
	int *rows;
	long M;
	double denom;
} loss_ctx;

static double loss_f(void *c)
{
	loss_ctx *l = c;
	return aim_pixloss_forward(l->pred, l->target, l->rows, l->M, P, l->denom);
}

static void test_loss(void)
{
	float patches[B * K * P], target[B * K * P], pred[B * K * P], dpred[B * K * P];
	int prefix[B] = {1, 4}, rows[B * K];
	aim_rng rng;
	aim_rng_init(&rng, 1, 2);
	aim_rng_fill_uniform(&rng, patches, B * K * P, 2.0f);
	aim_rng_fill_uniform(&rng, pred, B * K * P, 1.0f);
	CHECK(aim_pixloss_count(prefix, B, K) == (K - 1) + (K - 4));
	long M = aim_pixloss_rows(prefix, B, K, rows);
	CHECK(M == aim_pixloss_count(prefix, B, K));
	/* image 0 predicts from positions 0..K-2, image 1 from 3..K-2 */
	CHECK(rows[0] == 0 && rows[K - 2] == K - 2 && rows[K - 1] == K + 3 && rows[M - 1] == 2 * K - 2);
	for (int norm = 0; norm <= 1; norm++) {
		aim_pixloss_targets(target, patches, B * K, P, norm, NULL);
		if (norm) {
			/* standardised: mean 0, unbiased variance 1 (up to eps) */
			double m = 0, v = 0;
			for (int j = 0; j < P; j++)
				m += target[j];
			for (int j = 0; j < P; j++)
				v += (target[j] - m / P) * (target[j] - m / P);
			CHECK_NEAR(m / P, 0, 1e-5);
			CHECK_NEAR(v / (P - 1), 1, 1e-3);
		}
		/* The loss by its definition, straight from the full layout. */
		double want = 0;
		for (int b = 0; b < B; b++)
			for (int k = prefix[b] - 1; k < K - 1; k++) {
				double se = 0;
				for (int j = 0; j < P; j++) {
					double d = pred[(b * K + k) * P + j] - target[(b * K + k + 1) * P + j];
					se += d * d;
				}
				want += se / P / 7.0;
			}
		/* pred rows in the compact layout of the predicting rows */
		float cp[B * K * P];
		for (long i = 0; i < M; i++)
			memcpy(cp + i * P, pred + (long)rows[i] * P, sizeof(float) * P);
		loss_ctx c = {cp, target, rows, M, 7.0};
		CHECK_NEAR(loss_f(&c), want, 1e-6);
		aim_pixloss_backward(cp, target, rows, M, P, c.denom, dpred);
		check_tensor(norm ? "norm-pix loss" : "raw-pixel loss", cp, dpred, M * P, loss_f, &c);
	}
}

static void test_schedule_and_prefix(void)
{
	aim_schedule s = {1e-3, 1e-5, 10, 110};
	CHECK_NEAR(aim_schedule_lr(&s, 0), 1e-4, 1e-12);
	CHECK_NEAR(aim_schedule_lr(&s, 9), 1e-3, 1e-12);
	CHECK_NEAR(aim_schedule_lr(&s, 10), 1e-3, 1e-12);
	CHECK_NEAR(aim_schedule_lr(&s, 60), 0.5 * (1e-3 + 1e-5), 1e-12);
	CHECK_NEAR(aim_schedule_lr(&s, 110), 1e-5, 1e-12);
	/* Prefix lengths: in [1, K-1], all values reached, a pure function. */
	int seen[16] = {0};
	for (uint64_t g = 0; g < 2000; g++) {
		int p = aim_prefix_len(3, AIM_RNG_PREFIX, g, 16);
		CHECK(p >= 1 && p <= 15);
		if (p >= 1 && p <= 15)
			seen[p]++;
		CHECK(p == aim_prefix_len(3, AIM_RNG_PREFIX, g, 16));
	}
	for (int p = 1; p <= 15; p++)
		CHECK_MSG(seen[p] > 60, "prefix %d drawn %d times of 2000", p, seen[p]);
	CHECK(aim_decays("trunk.blocks.0.attn.qkv.weight"));
	CHECK(!aim_decays("trunk.blocks.0.norm_1.weight"));
	CHECK(!aim_decays("pixel_head.proj.bias"));
}

int main(void)
{
	test_head();
	test_loss();
	test_schedule_and_prefix();
	return check_summary("train_grad");
}
