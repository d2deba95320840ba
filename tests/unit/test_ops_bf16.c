/* The CPU backend's bf16 products (--precision bf16) against two oracles:
 *  - the exact semantics: both operands rounded to bf16 (nearest even),
 *    products summed in double — the result must match to fp32
 *    accumulation error (1e-5 of Σ|a·b|);
 *  - the fp32 ops of ops.h (OpenBLAS): within the bf16 rounding bound,
 *    |bf16 − fp32| ≤ 2⁻⁷·Σ|a·b| (each operand off by at most 2⁻⁹ relative).
 * Every op: linear forward (with and without bias), forward-accumulate,
 * the linear layer with its GELU inside the product (against the exact
 * GELU of the rounded-operand product),
 * backward (dx, dw, db, each accumulating), patch embedding both ways,
 * over shapes from one row to a few hundred, odd sizes included; a product
 * narrower than AIM_BF16_MIN_WIDTH in or out (a LoRA factor, an adapter's
 * bottleneck) must be exactly the fp32 op.
 * The attention (its score and value products in bf16 from 64 tokens on)
 * against the fp32 attention: per-token cosine ≥ 0.999 and a norm-relative
 * error within the bf16 bound, forward and backward, every mask; below 64
 * tokens exactly the fp32 op.
 * Then the weight copies: remade after an optimizer step, after a write
 * through the backend, and after a write behind its back; dropped with
 * the memory that held them. Skipped (77) where bf16 is not native. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "ops.h"
#include "ops_bf16.h"
#include "train_optim.h"

static unsigned long long rng = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static float *rand_vec(const aim_backend *be, size_t n, double scale)
{
	float *v = be->alloc(n * sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = (float)(urand() * scale);
	return v;
}
static float *copy_of(const aim_backend *be, const float *x, size_t n)
{
	float *v = be->alloc(n * sizeof *v);
	memcpy(v, x, n * sizeof *v);
	return v;
}
static double r16(float x) { return aim_bf16_to_f32(aim_bf16_from_f32(x)); }

/* C[i,j] = Σ_k A(i,k)·B(k,j) with A(i,k) = a[i*sai + k*sak], B likewise:
 * exact[] with bf16-rounded operands, bound[] = Σ|a·b| in fp32 values. */
static void oracle(double *exact, double *bound, int M, int N, int K, const float *a, long sai,
		   long sak, const float *b, long sbk, long sbj)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			double e = 0, s = 0;
			for (int k = 0; k < K; k++) {
				float x = a[i * sai + k * sak], y = b[k * sbk + j * sbj];
				e += r16(x) * r16(y);
				s += fabs((double)x * y);
			}
			exact[(size_t)i * N + j] = e;
			bound[(size_t)i * N + j] = s;
		}
}

static int g_narrow; /* the shape under test stays fp32: got must be fp exactly */

/* got = start + exact (within accumulation error); and got vs the fp32
 * op's result fp within the bf16 bound. */
static void expect(const char *what, const float *got, const float *fp, const float *start,
		   const double *exact, const double *bound, size_t n)
{
	if (g_narrow) {
		CHECK_MSG(memcmp(got, fp, n * sizeof(float)) == 0, "%s: narrow, not the fp32 op", what);
		return;
	}
	double worst_exact = 0, worst_fp = 0;
	for (size_t i = 0; i < n; i++) {
		double base = start ? start[i] : 0;
		double b = bound[i] + fabs(base) + 1e-30;
		worst_exact = fmax(worst_exact, fabs(got[i] - (base + exact[i])) / b);
		worst_fp = fmax(worst_fp, fabs((double)got[i] - fp[i]) / b);
	}
	CHECK_MSG(worst_exact <= 1e-5, "%s: %.3g of Σ|a·b| from the rounded-operand product", what,
		  worst_exact);
	CHECK_MSG(worst_fp <= 0x1p-7, "%s: %.3g of Σ|a·b| from fp32", what, worst_fp);
}

static void check_shape(const aim_backend *be, int M, int in, int out)
{
	char what[96];
	size_t nx = (size_t)M * in, nw = (size_t)out * in, ny = (size_t)M * out;
	float *x = rand_vec(be, nx, 1.0), *w = rand_vec(be, nw, 0.5), *b = rand_vec(be, out, 0.3);
	float *y0 = rand_vec(be, ny, 1.0); /* what the accumulating ops add onto */
	float *dy = rand_vec(be, ny, 1.0);
	double *exact = malloc(sizeof(double) * (ny > nw ? (ny > nx ? ny : nx) : (nw > nx ? nw : nx)));
	double *bound = malloc(sizeof(double) * (ny > nw ? (ny > nx ? ny : nx) : (nw > nx ? nw : nx)));
	g_narrow = aim_bf16_narrow(in, out);

	/* y = x·wᵀ + b */
	float *y = be->alloc(ny * sizeof(float)), *yf = be->alloc(ny * sizeof(float));
	be->linear_fwd(y, x, w, b, M, in, out);
	aim_linear_fwd(yf, x, w, b, M, in, out);
	oracle(exact, bound, M, out, in, x, in, 1, w, 1, in);
	for (size_t i = 0; i < ny; i++)
		exact[i] += b[i % out];
	snprintf(what, sizeof what, "linear_fwd %dx%dx%d", M, in, out);
	expect(what, y, yf, NULL, exact, bound, ny);
	/* without bias, and the patch embedding (the same product) */
	be->linear_fwd(y, x, w, NULL, M, in, out);
	aim_linear_fwd(yf, x, w, NULL, M, in, out);
	for (size_t i = 0; i < ny; i++)
		exact[i] -= b[i % out];
	snprintf(what, sizeof what, "linear_fwd no bias %dx%dx%d", M, in, out);
	expect(what, y, yf, NULL, exact, bound, ny);
	be->patch_embed_fwd(y, x, w, b, M, in, out);
	aim_patch_embed_fwd(yf, x, w, b, M, in, out);
	for (size_t i = 0; i < ny; i++)
		exact[i] += b[i % out];
	snprintf(what, sizeof what, "patch_embed_fwd %dx%dx%d", M, in, out);
	expect(what, y, yf, NULL, exact, bound, ny);
	/* y = GELU(x·wᵀ + b), the GELU applied inside the product: against
	 * the exact GELU of the rounded-operand product (GELU' ≤ 1.13, so the
	 * product's error bound grows by that; 1e-6 of the value for
	 * oneDNN's erf), and against the fp32 op within the bf16 bound */
	be->linear_gelu_fwd(y, x, w, b, M, in, out);
	aim_linear_gelu_fwd(yf, x, w, b, M, in, out);
	if (g_narrow) {
		CHECK_MSG(memcmp(y, yf, ny * sizeof(float)) == 0,
			  "linear_gelu_fwd %dx%dx%d: narrow, not the fp32 op", M, in, out);
	} else {
		double worst_exact = 0, worst_fp = 0;
		for (size_t i = 0; i < ny; i++) {
			double v = exact[i], g = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
			double lim = 1.13 * bound[i] + 1e-30;
			worst_exact = fmax(worst_exact, fabs(y[i] - g) / (lim * 1e-5 + 1e-6 * fabs(v)));
			worst_fp = fmax(worst_fp, fabs((double)y[i] - yf[i]) / lim);
		}
		CHECK_MSG(worst_exact <= 1, "linear_gelu_fwd %dx%dx%d: %.3g of its bound from the "
			  "GELU of the rounded-operand product", M, in, out, worst_exact);
		CHECK_MSG(worst_fp <= 0x1p-7, "linear_gelu_fwd %dx%dx%d: %.3g of 1.13·Σ|a·b| from fp32",
			  M, in, out, worst_fp);
	}
	/* y += x·wᵀ + b */
	memcpy(y, y0, ny * sizeof(float));
	memcpy(yf, y0, ny * sizeof(float));
	be->linear_fwd_acc(y, x, w, b, M, in, out);
	aim_linear_fwd_acc(yf, x, w, b, M, in, out);
	snprintf(what, sizeof what, "linear_fwd_acc %dx%dx%d", M, in, out);
	expect(what, y, yf, y0, exact, bound, ny);

	/* dx += dy·w, dw += dyᵀ·x, db += Σ dy */
	float *dx0 = rand_vec(be, nx, 1.0), *dw0 = rand_vec(be, nw, 1.0), *db0 = rand_vec(be, out, 1.0);
	float *dx = copy_of(be, dx0, nx), *dw = copy_of(be, dw0, nw), *db = copy_of(be, db0, out);
	float *dxf = copy_of(be, dx0, nx), *dwf = copy_of(be, dw0, nw), *dbf = copy_of(be, db0, out);
	be->linear_bwd(dx, dw, db, dy, x, w, M, in, out);
	aim_linear_bwd(dxf, dwf, dbf, dy, x, w, M, in, out);
	oracle(exact, bound, M, in, out, dy, out, 1, w, in, 1);
	snprintf(what, sizeof what, "linear_bwd dx %dx%dx%d", M, in, out);
	expect(what, dx, dxf, dx0, exact, bound, nx);
	oracle(exact, bound, out, in, M, dy, 1, out, x, in, 1);
	snprintf(what, sizeof what, "linear_bwd dw %dx%dx%d", M, in, out);
	expect(what, dw, dwf, dw0, exact, bound, nw);
	double worst = 0; /* the bias gradient is an fp32 sum, as in fp32 */
	for (int j = 0; j < out; j++)
		worst = fmax(worst, fabs(db[j] - dbf[j]));
	CHECK_MSG(worst <= 1e-5 * M, "linear_bwd db %dx%dx%d: %g", M, in, out, worst);
	/* the patch embedding's backward: dw and db only */
	memcpy(dw, dw0, nw * sizeof(float));
	memcpy(dwf, dw0, nw * sizeof(float));
	memcpy(db, db0, out * sizeof(float));
	memcpy(dbf, db0, out * sizeof(float));
	be->patch_embed_bwd(dw, db, dy, x, M, in, out);
	aim_patch_embed_bwd(dwf, dbf, dy, x, M, in, out);
	snprintf(what, sizeof what, "patch_embed_bwd dw %dx%dx%d", M, in, out);
	expect(what, dw, dwf, dw0, exact, bound, nw);

	float *all[] = {x, w, b, y0, dy, y, yf, dx0, dw0, db0, dx, dw, db, dxf, dwf, dbf};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		be->free(all[i]);
	free(exact);
	free(bound);
}

/* y = x·wᵀ recomputed in double from the current w (bf16-rounded). */
static double max_err_vs_current(const float *y, const float *x, const float *w, int M, int in,
				 int out)
{
	double worst = 0;
	for (int i = 0; i < M; i++)
		for (int j = 0; j < out; j++) {
			double e = 0;
			for (int k = 0; k < in; k++)
				e += r16(x[i * in + k]) * r16(w[j * in + k]);
			worst = fmax(worst, fabs(y[i * out + j] - e));
		}
	return worst;
}

static void check_weight_copies(const aim_backend *be)
{
	const int M = 33, in = 40, out = 40; /* wide enough for bf16 */
	float *x = rand_vec(be, (size_t)M * in, 1.0), *w = rand_vec(be, (size_t)out * in, 0.5);
	float *y = be->alloc(sizeof(float) * M * out);
	be->linear_fwd(y, x, w, NULL, M, in, out);
	CHECK(max_err_vs_current(y, x, w, M, in, out) < 1e-4);
	/* an optimizer step moves every weight: the copy follows */
	size_t n = (size_t)out * in;
	float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float)), *g = malloc(n * 4);
	for (size_t i = 0; i < n; i++)
		g[i] = (float)urand();
	aim_adamw_tensor(w, m, v, g, (long)n, 0.05, 0.9, 0.95, 1e-8, 0.1, 1, 1);
	be->linear_fwd(y, x, w, NULL, M, in, out);
	CHECK_MSG(max_err_vs_current(y, x, w, M, in, out) < 1e-4, "after an optimizer step");
	/* one weight changed through the backend's copy */
	float one = 7.0f;
	be->copy(w + 5, &one, sizeof one);
	be->linear_fwd(y, x, w, NULL, M, in, out);
	CHECK_MSG(max_err_vs_current(y, x, w, M, in, out) < 1e-4, "after a backend copy");
	/* all of them replaced behind the backend's back (a new mapping at the
	 * same address): the sampled elements notice */
	for (size_t i = 0; i < n; i++)
		w[i] = (float)urand();
	be->linear_fwd(y, x, w, NULL, M, in, out);
	CHECK_MSG(max_err_vs_current(y, x, w, M, in, out) < 1e-4, "after an unseen rewrite");
	/* freed and allocated again: a fresh copy */
	be->free(w);
	w = rand_vec(be, n, 0.5);
	be->linear_fwd(y, x, w, NULL, M, in, out);
	CHECK_MSG(max_err_vs_current(y, x, w, M, in, out) < 1e-4, "after free and alloc");
	free(m);
	free(v);
	free(g);
	be->free(x);
	be->free(w);
	be->free(y);
}

static double cosine(const float *a, const float *b, int n)
{
	double ab = 0, aa = 0, bb = 0;
	for (int i = 0; i < n; i++) {
		ab += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return aa == 0 && bb == 0 ? 1.0 : ab / sqrt(aa * bb + 1e-300);
}
static double rel_err(const float *a, const float *b, size_t n)
{
	double d = 0, r = 0;
	for (size_t i = 0; i < n; i++) {
		d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		r += (double)b[i] * b[i];
	}
	return sqrt(d / (r + 1e-300));
}

static void check_attention(const aim_backend *be, int K, int hd, aim_mask_kind mask)
{
	const int B = 2, H = 2, D = H * hd;
	int prefix[2] = {5, K * 2 / 3};
	size_t nqkv = (size_t)B * K * 3 * D, nout = (size_t)B * K * D;
	float *qkv = rand_vec(be, nqkv, 1.5), *g = rand_vec(be, nout, 1);
	float *o16 = be->alloc(nout * 4), *o32 = be->alloc(nout * 4);
	float *l16 = be->alloc((size_t)B * H * K * 4), *l32 = be->alloc((size_t)B * H * K * 4);
	float *d16 = be->alloc(nqkv * 4), *d32 = be->alloc(nqkv * 4);
	be->attention_fwd(o16, l16, qkv, B, K, H, hd, mask, prefix);
	aim_attention_fwd(o32, l32, qkv, B, K, H, hd, mask, prefix);
	be->attention_bwd(d16, g, qkv, o16, l16, B, K, H, hd, mask, prefix);
	aim_attention_bwd(d32, g, qkv, o32, l32, B, K, H, hd, mask, prefix);
	if (K < 64) {
		CHECK_MSG(!memcmp(o16, o32, nout * 4) && !memcmp(d16, d32, nqkv * 4),
			  "attention K=%d: not the fp32 op", K);
	} else {
		double worst = 1;
		for (int t = 0; t < B * K; t++)
			for (int h = 0; h < H; h++) {
				double c = cosine(o16 + (size_t)t * D + h * hd,
						  o32 + (size_t)t * D + h * hd, hd);
				worst = c < worst ? c : worst;
			}
		CHECK_MSG(worst >= 0.999, "attention K=%d hd=%d mask %d: token cosine %.5f", K, hd,
			  (int)mask, worst);
		CHECK_MSG(rel_err(o16, o32, nout) <= 0x1p-6, "attention K=%d out: %.3g", K,
			  rel_err(o16, o32, nout));
		CHECK_MSG(rel_err(d16, d32, nqkv) <= 0x1p-5, "attention K=%d dqkv: %.3g", K,
			  rel_err(d16, d32, nqkv));
		CHECK_MSG(memcmp(o16, o32, nout * 4), "attention K=%d: bf16 gave the fp32 bits", K);
	}
	be->free(qkv);
	be->free(g);
	be->free(o16);
	be->free(o32);
	be->free(l16);
	be->free(l32);
	be->free(d16);
	be->free(d32);
}

int main(void)
{
	const aim_backend *be = aim_backend_cpu();
	const char *why = aim_bf16_unavailable();
	if (why) {
		printf("bf16 not native here: %s\n", why);
		return 77;
	}
	CHECK(aim_backend_set_precision(be, "bf16") == 0);
	const int shapes[][3] = {{1, 8, 4},      {7, 13, 5},     {64, 48, 144},  {257, 96, 33},
				 {300, 384, 64}, {16, 192, 576}, {300, 384, 8},  {300, 8, 384},
				 {70, 768, 32},  {70, 32, 768},  {40, 33, 40}};
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		check_shape(be, shapes[i][0], shapes[i][1], shapes[i][2]);
	const aim_mask_kind masks[] = {AIM_MASK_NONE, AIM_MASK_CAUSAL, AIM_MASK_PREFIX};
	for (int m = 0; m < 3; m++) {
		check_attention(be, 16, 32, masks[m]);
		check_attention(be, 49, 64, masks[m]);
		check_attention(be, 70, 32, masks[m]);
		check_attention(be, 257, 64, masks[m]);
	}
	check_weight_copies(be);
	/* and back: fp32 gives exactly the fp32 op */
	CHECK(aim_backend_set_precision(be, "fp32") == 0);
	float *x = rand_vec(be, 64 * 32, 1), *w = rand_vec(be, 48 * 32, 1);
	float *y = be->alloc(64 * 48 * 4), *yf = be->alloc(64 * 48 * 4);
	be->linear_fwd(y, x, w, NULL, 64, 32, 48);
	aim_linear_fwd(yf, x, w, NULL, 64, 32, 48);
	CHECK(memcmp(y, yf, 64 * 48 * 4) == 0);
	be->linear_gelu_fwd(y, x, w, NULL, 64, 32, 48);
	aim_linear_gelu_fwd(yf, x, w, NULL, 64, 32, 48);
	CHECK(memcmp(y, yf, 64 * 48 * 4) == 0);
	be->free(x);
	be->free(w);
	be->free(y);
	be->free(yf);
	return check_summary("test_ops_bf16");
}
