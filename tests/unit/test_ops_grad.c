/* Every op's backward against central finite differences of its forward,
 * and each forward against a plain double-precision formula.
 * The loss is L = Σ g ⊙ y for a fixed random g, so dL/dy = g. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops.h"

static unsigned long long rng = 88172645463325252ull;
static double urand(void) /* uniform in [-1, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static float *rand_vec(size_t n, double scale)
{
	float *v = malloc(n * sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = (float)(urand() * scale);
	return v;
}
static float *zeros(size_t n) { return calloc(n, sizeof(float)); }

/* A forward under test: reads its inputs from ctx, writes y, returns Σ g·y. */
typedef double (*loss_fn)(void *ctx);

/* Compare analytic grad[0..n) of parameter x with finite differences of
 * loss(ctx) on up to 24 random coordinates. */
static void check_grad(const char *what, loss_fn loss, void *ctx, float *x,
		       const float *grad, size_t n, double h, double rtol)
{
	double gmax = 1e-6;
	for (size_t i = 0; i < n; i++)
		gmax = fmax(gmax, fabs(grad[i]));
	double worst = 0;
	size_t worst_i = 0;
	int probes = n < 24 ? (int)n : 24;
	for (int t = 0; t < probes; t++) {
		size_t i = n <= 24 ? (size_t)t : (size_t)((urand() + 1) / 2 * n) % n;
		float keep = x[i];
		x[i] = keep + (float)h;
		double lp = loss(ctx);
		x[i] = keep - (float)h;
		double lm = loss(ctx);
		x[i] = keep;
		double fd = (lp - lm) / (2 * h);
		double err = fabs(fd - grad[i]) / gmax;
		if (err > worst) {
			worst = err;
			worst_i = i;
		}
	}
	CHECK_MSG(worst <= rtol, "%s: grad[%zu] off by %.3g of max |grad| %.3g", what, worst_i,
		  worst, gmax);
}

static double dot(const float *a, const float *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* ---- linear ---- */
struct lin { int M, in, out; float *x, *w, *b, *y, *g; };
static double lin_loss(void *c)
{
	struct lin *l = c;
	aim_linear_fwd(l->y, l->x, l->w, l->b, l->M, l->in, l->out);
	return dot(l->y, l->g, (size_t)l->M * l->out);
}
static void test_linear(int with_bias)
{
	struct lin l = {.M = 5, .in = 7, .out = 6};
	l.x = rand_vec(35, 1); l.w = rand_vec(42, 1); l.b = with_bias ? rand_vec(6, 1) : NULL;
	l.y = zeros(30); l.g = rand_vec(30, 1);
	lin_loss(&l);
	for (int i = 0; i < l.M; i++)
		for (int o = 0; o < l.out; o++) {
			double s = l.b ? l.b[o] : 0;
			for (int k = 0; k < l.in; k++)
				s += (double)l.x[i * l.in + k] * l.w[o * l.in + k];
			CHECK_NEAR(l.y[i * l.out + o], s, 1e-5);
		}
	float *dx = zeros(35), *dw = zeros(42), *db = zeros(6);
	aim_linear_bwd(dx, dw, l.b ? db : NULL, l.g, l.x, l.w, l.M, l.in, l.out);
	check_grad("linear dx", lin_loss, &l, l.x, dx, 35, 1e-2, 1e-3);
	check_grad("linear dw", lin_loss, &l, l.w, dw, 42, 1e-2, 1e-3);
	if (l.b)
		check_grad("linear db", lin_loss, &l, l.b, db, 6, 1e-2, 1e-3);
	/* patch embedding is the same GEMM */
	lin_loss(&l);
	float *y2 = zeros(30);
	aim_patch_embed_fwd(y2, l.x, l.w, l.b, l.M, l.in, l.out);
	CHECK(memcmp(y2, l.y, 30 * sizeof(float)) == 0);
	float *dw2 = zeros(42), *db2 = zeros(6);
	aim_patch_embed_bwd(dw2, l.b ? db2 : NULL, l.g, l.x, l.M, l.in, l.out);
	CHECK(memcmp(dw2, dw, 42 * sizeof(float)) == 0);
	free(l.x); free(l.w); free(l.b); free(l.y); free(l.g); free(dx); free(dw); free(db);
	free(y2); free(dw2); free(db2);
}

/* ---- layernorm ---- */
struct ln { int M, D; float *x, *w, *b, *y, *g, *mean, *rstd; };
static double ln_loss(void *c)
{
	struct ln *l = c;
	aim_layernorm_fwd(l->y, l->mean, l->rstd, l->x, l->w, l->b, l->M, l->D, 1e-6f);
	return dot(l->y, l->g, (size_t)l->M * l->D);
}
static void test_layernorm(void)
{
	struct ln l = {.M = 6, .D = 37};
	size_t n = 6 * 37;
	l.x = rand_vec(n, 2); l.w = rand_vec(37, 1); l.b = rand_vec(37, 1);
	for (size_t i = 0; i < n; i++)
		l.x[i] += 3.0f; /* a non-zero mean */
	l.y = zeros(n); l.g = rand_vec(n, 1); l.mean = zeros(6); l.rstd = zeros(6);
	ln_loss(&l);
	for (int i = 0; i < l.M; i++) {
		double mu = 0, var = 0;
		for (int j = 0; j < l.D; j++)
			mu += l.x[i * l.D + j];
		mu /= l.D;
		for (int j = 0; j < l.D; j++)
			var += pow(l.x[i * l.D + j] - mu, 2);
		var /= l.D;
		for (int j = 0; j < l.D; j++) {
			double ref = (l.x[i * l.D + j] - mu) / sqrt(var + 1e-6) * l.w[j] + l.b[j];
			CHECK_NEAR(l.y[i * l.D + j], ref, 1e-5);
		}
	}
	float *dx = zeros(n), *dw = zeros(37), *db = zeros(37);
	aim_layernorm_bwd(dx, dw, db, l.g, l.x, l.w, l.mean, l.rstd, l.M, l.D);
	check_grad("layernorm dx", ln_loss, &l, l.x, dx, n, 1e-2, 2e-3);
	check_grad("layernorm dw", ln_loss, &l, l.w, dw, 37, 1e-2, 1e-3);
	check_grad("layernorm db", ln_loss, &l, l.b, db, 37, 1e-2, 1e-3);
	free(l.x); free(l.w); free(l.b); free(l.y); free(l.g); free(l.mean); free(l.rstd);
	free(dx); free(dw); free(db);
}

/* ---- rmsnorm ---- */
struct rn { int M, D; float *x, *w, *y, *g, *rstd; };
static double rn_loss(void *c)
{
	struct rn *l = c;
	aim_rmsnorm_fwd(l->y, l->rstd, l->x, l->w, l->M, l->D, 1e-5f);
	return dot(l->y, l->g, (size_t)l->M * l->D);
}
static void test_rmsnorm(void)
{
	struct rn l = {.M = 6, .D = 37};
	size_t n = 6 * 37;
	l.x = rand_vec(n, 2); l.w = rand_vec(37, 1);
	for (size_t i = 0; i < n; i++)
		l.x[i] += 1.0f; /* a non-zero mean: RMSNorm must not subtract it */
	l.y = zeros(n); l.g = rand_vec(n, 1); l.rstd = zeros(6);
	rn_loss(&l);
	for (int i = 0; i < l.M; i++) {
		double ms = 0;
		for (int j = 0; j < l.D; j++)
			ms += pow(l.x[i * l.D + j], 2);
		ms /= l.D;
		for (int j = 0; j < l.D; j++)
			CHECK_NEAR(l.y[i * l.D + j], l.x[i * l.D + j] / sqrt(ms + 1e-5) * l.w[j], 1e-5);
	}
	float *dx = zeros(n), *dw = zeros(37);
	aim_rmsnorm_bwd(dx, dw, l.g, l.x, l.w, l.rstd, l.M, l.D);
	check_grad("rmsnorm dx", rn_loss, &l, l.x, dx, n, 1e-2, 2e-3);
	check_grad("rmsnorm dw", rn_loss, &l, l.w, dw, 37, 1e-2, 1e-3);
	free(l.x); free(l.w); free(l.y); free(l.g); free(l.rstd); free(dx); free(dw);
}

/* ---- swiglu ---- */
struct sw { size_t n; float *a, *b, *y, *g; };
static double swiglu_loss(void *c)
{
	struct sw *e = c;
	aim_swiglu_fwd(e->y, e->a, e->b, e->n);
	return dot(e->y, e->g, e->n);
}
static void test_swiglu(void)
{
	struct sw e = {.n = 5000};
	e.a = rand_vec(e.n, 8); e.b = rand_vec(e.n, 2); e.y = zeros(e.n); e.g = rand_vec(e.n, 1);
	swiglu_loss(&e);
	double worst = 0;
	for (size_t i = 0; i < e.n; i++) {
		double a = e.a[i], ref = a / (1 + exp(-a)) * e.b[i];
		worst = fmax(worst, fabs(e.y[i] - ref) / (1 + fabs(ref)));
	}
	CHECK_MSG(worst < 1e-6, "swiglu worst error %g", worst);
	float *da = zeros(e.n), *db = zeros(e.n);
	aim_swiglu_bwd(da, db, e.g, e.a, e.b, e.n);
	check_grad("swiglu da", swiglu_loss, &e, e.a, da, e.n, 1e-2, 2e-3);
	check_grad("swiglu db", swiglu_loss, &e, e.b, db, e.n, 1e-2, 2e-3);
	free(e.a); free(e.b); free(e.y); free(e.g); free(da); free(db);
}

/* ---- gelu ---- */
struct ge { size_t n; float *x, *y, *g; };
static double gelu_loss(void *c)
{
	struct ge *e = c;
	aim_gelu_fwd(e->y, e->x, e->n);
	return dot(e->y, e->g, e->n);
}
static void test_gelu(void)
{
	struct ge e = {.n = 5000};
	e.x = rand_vec(e.n, 6); e.y = zeros(e.n); e.g = rand_vec(e.n, 1);
	gelu_loss(&e);
	double worst = 0;
	for (size_t i = 0; i < e.n; i++) {
		double x = e.x[i], ref = 0.5 * x * (1 + erf(x / sqrt(2.0)));
		worst = fmax(worst, fabs(e.y[i] - ref));
	}
	CHECK_MSG(worst < 1e-6, "gelu worst abs error %g", worst);
	float *dx = zeros(e.n);
	aim_gelu_bwd(dx, e.g, e.x, e.n);
	check_grad("gelu dx", gelu_loss, &e, e.x, dx, e.n, 1e-2, 2e-3);
	free(e.x); free(e.y); free(e.g); free(dx);
}

/* ---- softmax ---- */
struct sm { int M, N; float *x, *y, *g; };
static double sm_loss(void *c)
{
	struct sm *s = c;
	aim_softmax_fwd(s->y, s->x, s->M, s->N);
	return dot(s->y, s->g, (size_t)s->M * s->N);
}
static void test_softmax(void)
{
	struct sm s = {.M = 4, .N = 29};
	size_t n = 4 * 29;
	s.x = rand_vec(n, 4); s.y = zeros(n); s.g = rand_vec(n, 1);
	sm_loss(&s);
	for (int i = 0; i < s.M; i++) {
		double z = 0;
		for (int j = 0; j < s.N; j++)
			z += exp(s.x[i * s.N + j]);
		for (int j = 0; j < s.N; j++)
			CHECK_NEAR(s.y[i * s.N + j], exp(s.x[i * s.N + j]) / z, 1e-6);
	}
	float *dx = zeros(n);
	aim_softmax_bwd(dx, s.g, s.y, s.M, s.N);
	check_grad("softmax dx", sm_loss, &s, s.x, dx, n, 1e-2, 2e-3);
	free(s.x); free(s.y); free(s.g); free(dx);
}

/* ---- attention ---- */
struct at { int B, K, H, hd; aim_mask_kind mask; int *prefix; float *qkv, *out, *lse, *g; };
static double at_loss(void *c)
{
	struct at *a = c;
	aim_attention_fwd(a->out, a->lse, a->qkv, a->B, a->K, a->H, a->hd, a->mask, a->prefix);
	return dot(a->out, a->g, (size_t)a->B * a->K * a->H * a->hd);
}
static int visible(const struct at *a, int b, int i, int j)
{
	if (a->mask == AIM_MASK_NONE)
		return 1;
	if (a->mask == AIM_MASK_PREFIX && j < a->prefix[b])
		return 1;
	return j <= i;
}
static void test_attention(aim_mask_kind mask, const char *name)
{
	struct at a = {.B = 2, .K = 11, .H = 3, .hd = 5, .mask = mask};
	int prefix[2] = {4, 13}; /* the second exceeds K: everything visible */
	a.prefix = prefix;
	int D = a.H * a.hd;
	size_t nq = (size_t)a.B * a.K * 3 * D, no = (size_t)a.B * a.K * D;
	a.qkv = rand_vec(nq, 1.5); a.out = zeros(no); a.lse = zeros((size_t)a.B * a.H * a.K);
	a.g = rand_vec(no, 1);
	at_loss(&a);
	double worst = 0;
	for (int b = 0; b < a.B; b++)
		for (int h = 0; h < a.H; h++)
			for (int i = 0; i < a.K; i++) {
				double s[64], z = 0, mx = -1e30;
				const float *q = a.qkv + ((size_t)(b * a.K + i) * 3 * D) + h * a.hd;
				for (int j = 0; j < a.K; j++) {
					const float *k = a.qkv + ((size_t)(b * a.K + j) * 3 * D) + D + h * a.hd;
					s[j] = -INFINITY;
					if (!visible(&a, b, i, j))
						continue;
					double d = 0;
					for (int t = 0; t < a.hd; t++)
						d += (double)q[t] * k[t];
					s[j] = d / sqrt(a.hd);
					mx = fmax(mx, s[j]);
				}
				for (int j = 0; j < a.K; j++)
					z += isinf(s[j]) ? 0 : exp(s[j] - mx);
				for (int t = 0; t < a.hd; t++) {
					double o = 0;
					for (int j = 0; j < a.K; j++) {
						if (isinf(s[j]))
							continue;
						const float *v = a.qkv + ((size_t)(b * a.K + j) * 3 * D) + 2 * D + h * a.hd;
						o += exp(s[j] - mx) / z * v[t];
					}
					worst = fmax(worst, fabs(o - a.out[(size_t)(b * a.K + i) * D + h * a.hd + t]));
				}
			}
	CHECK_MSG(worst < 1e-5, "attention %s forward worst error %g", name, worst);
	float *dqkv = zeros(nq);
	aim_attention_bwd(dqkv, a.g, a.qkv, a.out, a.lse, a.B, a.K, a.H, a.hd, a.mask, a.prefix);
	char what[64];
	snprintf(what, sizeof what, "attention %s dqkv", name);
	check_grad(what, at_loss, &a, a.qkv, dqkv, nq, 1e-2, 3e-3);
	free(a.qkv); free(a.out); free(a.lse); free(a.g); free(dqkv);
}

/* ---- position table ---- */
static void test_posembed(void)
{
	int rows = 3, cols = 5, D = 16, q = D / 4;
	float *t = zeros((size_t)rows * cols * D);
	CHECK(aim_sincos_pos_2d(t, rows, cols, D) == 0);
	for (int r = 0; r < rows; r++)
		for (int c = 0; c < cols; c++)
			for (int i = 0; i < q; i++) {
				double w = pow(10000.0, -(double)i / q);
				const float *e = t + (size_t)(r * cols + c) * D;
				CHECK_NEAR(e[i], sin(c * w), 1e-6);
				CHECK_NEAR(e[q + i], cos(c * w), 1e-6);
				CHECK_NEAR(e[2 * q + i], sin(r * w), 1e-6);
				CHECK_NEAR(e[3 * q + i], cos(r * w), 1e-6);
			}
	CHECK(aim_sincos_pos_2d(t, 2, 2, 18) < 0);
	free(t);
}

/* ---- element-wise helpers ---- */
static void test_elementwise(void)
{
	float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {6, 5, 4, 3, 2, 1}, y[6];
	aim_add_fwd(y, a, b, 6);
	for (int i = 0; i < 6; i++)
		CHECK(y[i] == 7);
	float t[3] = {1, 2, 3};
	aim_add_rows(y, t, 2, 3);
	CHECK(y[0] == 8 && y[4] == 9 && y[5] == 10);
	aim_axpy(y, 2, a, 6);
	CHECK(y[0] == 10 && y[5] == 22);
	aim_scale(y, 0.5f, y, 6);
	CHECK(y[0] == 5 && y[5] == 11);
	float s2[2] = {0, 1.25f};
	aim_add_scaled_rows(y, a, s2, b, 2, 3); /* row 0 dropped, row 1 kept */
	CHECK(y[0] == 1 && y[2] == 3 && y[3] == 4 + 1.25f * 3 && y[5] == 6 + 1.25f * 1);
	aim_add_scaled_rows(y, NULL, s2, b, 2, 3);
	CHECK(y[0] == 0 && y[1] == 0 && y[4] == 1.25f * 2);
}

int main(void)
{
	test_linear(1);
	test_linear(0);
	test_layernorm();
	test_rmsnorm();
	test_gelu();
	test_swiglu();
	test_softmax();
	test_attention(AIM_MASK_NONE, "bidirectional");
	test_attention(AIM_MASK_CAUSAL, "causal");
	test_attention(AIM_MASK_PREFIX, "prefix-causal");
	test_posembed();
	test_elementwise();
	return check_summary("test_ops_grad");
}
