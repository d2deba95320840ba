/* Probe heads: gradients against finite differences (no arguments), and a
 * dump mode for the PyTorch reference (tests/ref/test_probe_head.sh):
 *
 *   test_probe_head IN.safetensors OUT.safetensors
 *
 * IN holds a head (published names, "aim.head" metadata), "x" [B, K, D],
 * "label" I64 [B] and metadata "lr", "wd", "smoothing". OUT gets the eval
 * logits and pooled features, the training-mode logits, loss, every
 * parameter's gradient ("grad.<name>"), the input gradient through the
 * BatchNorm ("grad.x"), the running statistics after the training forward
 * and the parameters after one AdamW step ("step.<name>"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "err.h"
#include "probe_head.h"
#include "safetensors.h"

/* Loss of a full training forward (BN batch statistics) for finite
 * differences; running statistics are restored so repeated calls agree. */
static double train_loss(aim_head *h, const float *x, const int64_t *y, int B, int K,
			 double smooth, float *grad, float *dx)
{
	int D = h->cfg.dim, C = h->cfg.classes;
	int lin = h->cfg.kind == AIM_PROBE_LINEAR;
	int64_t rows = lin ? B : (int64_t)B * K;
	float *in = calloc((size_t)(rows * D), sizeof(float)), *xhat = malloc(sizeof(float) * rows * D);
	float mean[64], rstd[64], rm[64], rv[64];
	memcpy(rm, h->running_mean, sizeof(float) * D);
	memcpy(rv, h->running_var, sizeof(float) * D);
	if (lin) {
		for (int b = 0; b < B; b++)
			for (int d = 0; d < D; d++) {
				double s = 0;
				for (int i = 0; i < K; i++)
					s += x[((int64_t)b * K + i) * D + d];
				in[b * D + d] = (float)(s / K);
			}
	} else {
		memcpy(in, x, sizeof(float) * rows * D);
	}
	aim_head_bn_train_fwd(h, xhat, mean, rstd, in, rows);
	aim_head_cache c = {0};
	float *logits = malloc(sizeof(float) * B * C), *dl = malloc(sizeof(float) * B * C);
	aim_head_forward_train(h, &c, xhat, B, lin ? 1 : K, logits);
	double loss = aim_head_cross_entropy(logits, y, B, C, smooth, dl, NULL);
	if (grad) {
		float *dxhat = calloc((size_t)rows * D, sizeof(float));
		aim_head_backward(h, &c, xhat, dl, grad, dxhat);
		float *din = calloc((size_t)rows * D, sizeof(float));
		aim_head_bn_bwd(din, dxhat, xhat, rstd, rows, D);
		for (int b = 0; b < B; b++)
			for (int i = 0; i < K; i++)
				for (int d = 0; d < D; d++)
					dx[((int64_t)b * K + i) * D + d] =
						lin ? din[b * D + d] / K : din[((int64_t)b * K + i) * D + d];
		free(dxhat);
		free(din);
	}
	memcpy(h->running_mean, rm, sizeof(float) * D);
	memcpy(h->running_var, rv, sizeof(float) * D);
	aim_head_cache_free(&c);
	free(in), free(xhat), free(logits), free(dl);
	return loss;
}

static void finite_difference_check(aim_probe_kind kind, int Q, int bias)
{
	enum { B = 3, K = 5, D = 8, C = 4 };
	aim_head_config cfg;
	aim_head_config_default(&cfg, kind, D, C, 2);
	if (kind == AIM_PROBE_ATTENTIVE)
		cfg.queries = Q;
	cfg.linear_bias = bias;
	aim_head h;
	CHECK(aim_head_init(&h, &cfg, 7) == 0);
	/* larger query weights so attention is far from uniform */
	if (h.cls_token)
		for (int i = 0; i < Q * D; i++)
			h.cls_token[i] *= 40;
	float x[B * K * D], dx[B * K * D];
	uint64_t s = 1;
	for (int i = 0; i < B * K * D; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4 - 2);
	}
	int64_t y[B] = {0, 3, 1};
	float *grad = calloc(h.nparams, sizeof(float));
	train_loss(&h, x, y, B, K, 0.1, grad, dx);
	double worst = 0;
	for (size_t i = 0; i < h.nparams; i++) {
		float keep = h.params[i];
		double e = 1e-2;
		h.params[i] = keep + (float)e;
		double lp = train_loss(&h, x, y, B, K, 0.1, NULL, NULL);
		h.params[i] = keep - (float)e;
		double lm = train_loss(&h, x, y, B, K, 0.1, NULL, NULL);
		h.params[i] = keep;
		double fd = (lp - lm) / (2 * e), err = fabs(fd - grad[i]) / (fabs(fd) + 1e-2);
		if (err > worst)
			worst = err;
		CHECK_MSG(err < 3e-2, "kind %d param %zu: analytic %g, numeric %g", kind, i, grad[i], fd);
	}
	for (int i = 0; i < B * K * D; i++) {
		float keep = x[i];
		double e = 1e-2;
		x[i] = keep + (float)e;
		double lp = train_loss(&h, x, y, B, K, 0.1, NULL, NULL);
		x[i] = keep - (float)e;
		double lm = train_loss(&h, x, y, B, K, 0.1, NULL, NULL);
		x[i] = keep;
		double fd = (lp - lm) / (2 * e), err = fabs(fd - dx[i]) / (fabs(fd) + 1e-2);
		CHECK_MSG(err < 3e-2, "kind %d x[%d]: analytic %g, numeric %g", kind, i, dx[i], fd);
	}
	fprintf(stderr, "kind %d Q %d bias %d: worst relative gradient error %.2e\n", kind, Q, bias, worst);
	free(grad);
	aim_head_free(&h);
}

static float *f32_of(const aim_record *r, const char *name, int64_t *n)
{
	aim_tensor *t = aim_record_find(r, name);
	if (!t)
		return NULL;
	*n = aim_tensor_numel(t);
	float *out = malloc(sizeof(float) * (size_t)*n);
	aim_to_f32(out, t);
	return out;
}

static int dump(const char *in, const char *out)
{
	aim_stfile f;
	if (aim_st_open(&f, in)) {
		fprintf(stderr, "%s\n", aim_errmsg());
		return 1;
	}
	aim_head h;
	if (aim_head_load(&h, &f.rec, 0, in)) {
		fprintf(stderr, "%s\n", aim_errmsg());
		return 1;
	}
	int64_t nx, ny;
	float *x = f32_of(&f.rec, "x", &nx);
	aim_tensor *ty = aim_record_find(&f.rec, "x");
	int64_t B = ty->shape[0], K = ty->shape[1];
	int D = h.cfg.dim, C = h.cfg.classes;
	int64_t *y = malloc(sizeof(int64_t) * B);
	memcpy(y, aim_record_find(&f.rec, "label")->data, sizeof(int64_t) * B);
	(void)ny;
	double lr = atof(aim_record_get_meta(&f.rec, "lr"));
	double wd = atof(aim_record_get_meta(&f.rec, "wd"));
	double smooth = atof(aim_record_get_meta(&f.rec, "smoothing"));

	aim_record o;
	aim_record_init(&o);
	float *pooled = malloc(sizeof(float) * B * D), *logits = malloc(sizeof(float) * B * C);
	CHECK(aim_head_forward(&h, x, B, K, pooled, logits) == 0);
	aim_record_add(&o, "eval.logits", AIM_F32, 2, (int64_t[]){B, C}, logits);
	aim_record_add(&o, "eval.pooled", AIM_F32, 2, (int64_t[]){B, D}, pooled);

	/* training forward and backward, as train_loss but keeping everything */
	int lin = h.cfg.kind == AIM_PROBE_LINEAR;
	int64_t rows = lin ? B : B * K;
	float *inb = malloc(sizeof(float) * rows * D), *xhat = malloc(sizeof(float) * rows * D);
	float *mean = malloc(sizeof(float) * D), *rstd = malloc(sizeof(float) * D);
	if (lin) {
		for (int64_t b = 0; b < B; b++)
			for (int d = 0; d < D; d++) {
				double s = 0;
				for (int64_t i = 0; i < K; i++)
					s += x[(b * K + i) * D + d];
				inb[b * D + d] = (float)(s / K);
			}
	} else {
		memcpy(inb, x, sizeof(float) * rows * D);
	}
	aim_head_bn_train_fwd(&h, xhat, mean, rstd, inb, rows);
	aim_head_cache c = {0};
	float *dl = malloc(sizeof(float) * B * C);
	CHECK(aim_head_forward_train(&h, &c, xhat, B, lin ? 1 : K, logits) == 0);
	double loss = aim_head_cross_entropy(logits, y, B, C, smooth, dl, NULL);
	float *grad = calloc(h.nparams, sizeof(float));
	float *dxhat = calloc(rows * D, sizeof(float)), *din = calloc(rows * D, sizeof(float));
	float *dx = malloc(sizeof(float) * B * K * D);
	CHECK(aim_head_backward(&h, &c, xhat, dl, grad, dxhat) == 0);
	aim_head_bn_bwd(din, dxhat, xhat, rstd, rows, D);
	for (int64_t b = 0; b < B; b++)
		for (int64_t i = 0; i < K; i++)
			for (int d = 0; d < D; d++)
				dx[(b * K + i) * D + d] = lin ? din[b * D + d] / K : din[(b * K + i) * D + d];
	float lossf = (float)loss;
	aim_record_add(&o, "train.logits", AIM_F32, 2, (int64_t[]){B, C}, logits);
	aim_record_add(&o, "train.loss", AIM_F32, 1, (int64_t[]){1}, &lossf);
	aim_record_add(&o, "grad.x", AIM_F32, 3, (int64_t[]){B, K, D}, dx);
	aim_record_add(&o, "train.running_mean", AIM_F32, 1, (int64_t[]){D}, h.running_mean);
	aim_record_add(&o, "train.running_var", AIM_F32, 1, (int64_t[]){D}, h.running_var);
	int64_t Q = h.cfg.queries;
	struct { const char *name; float *p; int nd; int64_t sh[3]; } ps[] = {
		{"head.cls_token", h.cls_token, 3, {1, Q, D}},
		{"head.k.weight", h.wk, 2, {D, D}},
		{"head.v.weight", h.wv, 2, {D, D}},
		{"head.linear.weight", h.wlin, 2, {C, D}},
		{"head.linear.bias", h.blin, 1, {C}},
	};
	char name[128];
	for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) {
		if (!ps[i].p)
			continue;
		snprintf(name, sizeof name, "grad.%s", ps[i].name);
		aim_record_add(&o, name, AIM_F32, ps[i].nd, ps[i].sh, grad + (ps[i].p - h.params));
	}
	aim_head_adamw opt;
	aim_head_adamw_init(&opt, &h);
	aim_head_adamw_step(&opt, &h, grad, lr, wd);
	/* a second step with the same gradient exercises the moment updates */
	aim_head_adamw_step(&opt, &h, grad, lr, wd);
	for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) {
		if (!ps[i].p)
			continue;
		snprintf(name, sizeof name, "step.%s", ps[i].name);
		aim_record_add(&o, name, AIM_F32, ps[i].nd, ps[i].sh, ps[i].p);
	}
	if (aim_st_write(out, &o)) {
		fprintf(stderr, "%s\n", aim_errmsg());
		return 1;
	}
	aim_head_adamw_free(&opt);
	aim_head_cache_free(&c);
	aim_record_free(&o);
	aim_head_free(&h);
	aim_st_close(&f);
	free(x), free(y), free(pooled), free(logits), free(inb), free(xhat), free(mean), free(rstd);
	free(dl), free(grad), free(dxhat), free(din), free(dx);
	return check_summary("test_probe_head dump");
}

int main(int argc, char **argv)
{
	if (argc == 3)
		return dump(argv[1], argv[2]);
	finite_difference_check(AIM_PROBE_ATTENTIVE, 1, 0);
	finite_difference_check(AIM_PROBE_ATTENTIVE, 3, 1);
	finite_difference_check(AIM_PROBE_LINEAR, 0, 1);
	/* the schedule: warmup then cosine to zero */
	CHECK_NEAR(aim_head_lr_schedule(1.0, 0.5, 1, 10), 0.5, 1e-12);
	CHECK_NEAR(aim_head_lr_schedule(1.0, 1, 1, 10), 1.0, 1e-12);
	CHECK_NEAR(aim_head_lr_schedule(1.0, 5.5, 1, 10), 0.5, 1e-12);
	CHECK_NEAR(aim_head_lr_schedule(1.0, 10, 1, 10), 0.0, 1e-12);
	return check_summary("test_probe_head");
}
