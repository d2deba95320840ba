/* Every op of the backend table on the CUDA backend against the CPU
 * backend (the oracle), on the same random inputs, plus the training
 * kernels of aim_cuda_extra.h against train_loss.h / train_optim.h.
 * Tolerances are relative to the largest reference value of each output:
 * fp32 ops 2e-5 (the CPU's vectorised exp/erf and summation orders differ
 * from the GPU's by a few ulp), GEMMs by precision: fp32 2e-5, tf32 4e-3,
 * bf16 3e-2. Backward ops start from non-zero gradients, so accumulation
 * (+=) is checked too. Prints one line per check; exits 0 if all pass, 1
 * if any fails, 77 when there is no usable CUDA device.
 *   usage: test_backend_ops [-v] [--self]   (AIM_CUDA_LIB: the library)
 * --self runs the harness with the CPU backend on both sides (every error
 * must then be zero): a check of the test itself on machines without a
 * GPU. */
#include <math.h>
#include <stddef.h>

#include "gpu_expect.h"
#include "model.h"
#include "train_loss.h"
#include "train_optim.h"


/* ---- memory ----------------------------------------------------------------- */

static void test_memory(void)
{
	const size_t n = 100003;
	float *d = to_gpu(NULL, n * sizeof(float));
	float *h = from_gpu(d, n), *zero = calloc(n, sizeof(float));
	expect("alloc is zero-filled", h, zero, n, 0);
	float *x = rand_host(n, 1);
	gpu->upload(d, x, n * sizeof(float));
	free(h);
	h = from_gpu(d, n);
	expect("upload/download round trip", h, x, n, 0);
	float *e = to_gpu(NULL, n * sizeof(float));
	gpu->copy(e, d, n * sizeof(float));
	expect_dev("copy", e, x, n, 0);
	gpu->zero(d + 10, 100 * sizeof(float));
	memset(x + 10, 0, 100 * sizeof(float));
	expect_dev("zero (a range)", d, x, n, 0);
	gpu->synchronize();
	gpu->free(d);
	gpu->free(e);
	gpu->free(NULL);
	free(h);
	free(zero);
	free(x);
}

/* Empty shapes are no-ops (a kernel launch with zero blocks would be an
 * error): every op once with nothing to do. A failure aborts the run. */
static void test_empty(void)
{
	float *d = to_gpu(NULL, 64);
	gpu->add_fwd(d, d, d, 0);
	gpu->add_rows(d, d, 0, 4);
	gpu->add_rows(d, d, 4, 0);
	gpu->axpy(d, 1, d, 0);
	gpu->scale(d, 1, d, 0);
	gpu->add_scaled_rows(d, d, d, d, 0, 4);
	gpu->add_scaled_rows(d, NULL, d, d, 4, 0);
	gpu->gelu_fwd(d, d, 0);
	gpu->gelu_bwd(d, d, d, 0);
	gpu->softmax_fwd(d, d, 0, 5);
	gpu->softmax_bwd(d, d, d, 0, 5);
	gpu->layernorm_fwd(d, d, d, d, d, d, 0, 8, 1e-6f);
	gpu->layernorm_bwd(d, d, d, d, d, d, d, d, 0, 8);
	gpu->rmsnorm_fwd(d, d, d, d, 0, 8, 1e-5f);
	gpu->rmsnorm_bwd(d, d, d, d, d, d, 0, 8);
	gpu->swiglu_fwd(d, d, d, 0);
	gpu->swiglu_bwd(d, d, d, d, d, 0);
	gpu->linear_fwd(d, d, d, d, 0, 4, 4);
	gpu->linear_fwd_acc(d, d, d, d, 0, 4, 4);
	gpu->linear_bwd(d, d, d, d, d, d, 0, 4, 4);
	gpu->attention_fwd(d, d, d, 0, 4, 1, 2, AIM_MASK_CAUSAL, NULL);
	gpu->attention_bwd(d, d, d, d, d, 0, 4, 1, 2, AIM_MASK_CAUSAL, NULL);
	gpu->copy(d, d, 0);
	gpu->zero(d, 0);
	gpu->upload(d, d, 0);
	gpu->synchronize();
	gpu->free(d);
	checks++;
	if (verbose)
		printf("ok   empty shapes are no-ops\n");
}

/* ---- element-wise --------------------------------------------------------- */

static void test_elementwise(size_t n)
{
	char what[96];
	float *a = rand_host(n, 3), *b = rand_host(n, 3), *y = rand_host(n, 1);
	float *da = to_gpu(a, n * 4), *db = to_gpu(b, n * 4), *dy = to_gpu(y, n * 4);
	cpu->add_fwd(y, a, b, n);
	gpu->add_fwd(dy, da, db, n);
	snprintf(what, sizeof what, "add_fwd n=%zu", n);
	expect_dev(what, dy, y, n, 0);
	gpu->add_fwd(da, da, db, n); /* aliased */
	cpu->add_fwd(a, a, b, n);
	snprintf(what, sizeof what, "add_fwd aliased n=%zu", n);
	expect_dev(what, da, a, n, 0);
	size_t N = n / 7;
	cpu->add_rows(y, b, 7, N);
	gpu->add_rows(dy, db, 7, N);
	snprintf(what, sizeof what, "add_rows B=7 N=%zu", N);
	expect_dev(what, dy, y, n, 0);
	cpu->axpy(y, -0.37f, a, n);
	gpu->axpy(dy, -0.37f, da, n);
	snprintf(what, sizeof what, "axpy n=%zu", n);
	expect_dev(what, dy, y, n, 1e-6);
	cpu->scale(y, 1.9f, y, n);
	gpu->scale(dy, 1.9f, dy, n);
	snprintf(what, sizeof what, "scale aliased n=%zu", n);
	expect_dev(what, dy, y, n, 1e-6);
	float sr[7] = {0, 1.25f, 1, 0, 2.5f, 0.5f, 1.25f};
	float *dsr = to_gpu(sr, sizeof sr);
	cpu->add_scaled_rows(y, a, sr, b, 7, N);
	gpu->add_scaled_rows(dy, da, dsr, db, 7, N);
	snprintf(what, sizeof what, "add_scaled_rows B=7 N=%zu", N);
	expect_dev(what, dy, y, 7 * N, 1e-6);
	cpu->add_scaled_rows(y, NULL, sr, y, 7, N); /* the gradient's form, aliased */
	gpu->add_scaled_rows(dy, NULL, dsr, dy, 7, N);
	snprintf(what, sizeof what, "add_scaled_rows aliased B=7 N=%zu", N);
	expect_dev(what, dy, y, 7 * N, 1e-6);
	gpu->free(dsr);

	/* GELU over a wide range, both tails included */
	float *x = rand_host(n, 8), *g = rand_host(n, 1), *dx = rand_host(n, 1);
	float *dxx = to_gpu(x, n * 4), *dg = to_gpu(g, n * 4), *ddx = to_gpu(dx, n * 4);
	cpu->gelu_fwd(y, x, n);
	gpu->gelu_fwd(dy, dxx, n);
	snprintf(what, sizeof what, "gelu_fwd n=%zu", n);
	expect_dev(what, dy, y, n, 2e-6);
	cpu->gelu_bwd(dx, g, x, n);
	gpu->gelu_bwd(ddx, dg, dxx, n);
	snprintf(what, sizeof what, "gelu_bwd (+=) n=%zu", n);
	expect_dev(what, ddx, dx, n, 2e-6);
	gpu->gelu_fwd(dxx, dxx, n); /* aliased */
	snprintf(what, sizeof what, "gelu_fwd aliased n=%zu", n);
	expect_dev(what, dxx, y, n, 2e-6);
	/* SwiGLU gate: a over a wide range, b the second operand */
	float *u = rand_host(n, 2), *du = rand_host(n, 1);
	float *dU = to_gpu(u, n * 4), *dDU = to_gpu(du, n * 4);
	x = rand_host(n, 8);
	gpu->upload(dxx, x, n * 4);
	gpu->upload(ddx, dx, n * 4);
	cpu->swiglu_fwd(y, x, u, n);
	gpu->swiglu_fwd(dy, dxx, dU, n);
	snprintf(what, sizeof what, "swiglu_fwd n=%zu", n);
	expect_dev(what, dy, y, n, 2e-6);
	cpu->swiglu_bwd(dx, du, g, x, u, n);
	gpu->swiglu_bwd(ddx, dDU, dg, dxx, dU, n);
	snprintf(what, sizeof what, "swiglu_bwd da (+=) n=%zu", n);
	expect_dev(what, ddx, dx, n, 2e-6);
	snprintf(what, sizeof what, "swiglu_bwd db (+=) n=%zu", n);
	expect_dev(what, dDU, du, n, 2e-6);
	float *ptrs[] = {da, db, dy, dxx, dg, ddx, dU, dDU};
	for (int i = 0; i < 8; i++)
		gpu->free(ptrs[i]);
	free(a); free(b); free(y); free(x); free(g); free(dx); free(u); free(du);
}

static void test_softmax(int M, int N)
{
	char what[96];
	size_t n = (size_t)M * N;
	float *x = rand_host(n, 6), *y = xmalloc(n * 4), *g = rand_host(n, 1), *dx = rand_host(n, 1);
	float *dxd = to_gpu(x, n * 4), *dyd = to_gpu(NULL, n * 4), *dg = to_gpu(g, n * 4);
	float *ddx = to_gpu(dx, n * 4);
	cpu->softmax_fwd(y, x, M, N);
	gpu->softmax_fwd(dyd, dxd, M, N);
	snprintf(what, sizeof what, "softmax_fwd M=%d N=%d", M, N);
	expect_dev(what, dyd, y, n, 2e-6);
	cpu->softmax_bwd(dx, g, y, M, N);
	gpu->softmax_bwd(ddx, dg, dyd, M, N);
	snprintf(what, sizeof what, "softmax_bwd (+=) M=%d N=%d", M, N);
	expect_dev(what, ddx, dx, n, 1e-5);
	gpu->softmax_fwd(dxd, dxd, M, N);
	snprintf(what, sizeof what, "softmax_fwd aliased M=%d N=%d", M, N);
	expect_dev(what, dxd, y, n, 2e-6);
	gpu->free(dxd); gpu->free(dyd); gpu->free(dg); gpu->free(ddx);
	free(x); free(y); free(g); free(dx);
}

static void test_layernorm(int M, int D)
{
	char what[96];
	size_t n = (size_t)M * D;
	float *x = rand_host(n, 2), *w = rand_host(D, 1), *b = rand_host(D, 1), *dy = rand_host(n, 1);
	for (size_t i = 0; i < n; i++)
		x[i] += 4.0f; /* rows with a mean: the variance must be centred */
	float *y = xmalloc(n * 4), *mu = xmalloc(M * 4), *rs = xmalloc(M * 4);
	float *dx = rand_host(n, 1), *dw = rand_host(D, 1), *db = rand_host(D, 1);
	float *X = to_gpu(x, n * 4), *W = to_gpu(w, D * 4), *Bb = to_gpu(b, D * 4);
	float *Y = to_gpu(NULL, n * 4), *MU = to_gpu(NULL, M * 4), *RS = to_gpu(NULL, M * 4);
	float *DY = to_gpu(dy, n * 4), *DX = to_gpu(dx, n * 4), *DW = to_gpu(dw, D * 4);
	float *DB = to_gpu(db, D * 4);
	cpu->layernorm_fwd(y, mu, rs, x, w, b, M, D, 1e-6f);
	gpu->layernorm_fwd(Y, MU, RS, X, W, Bb, M, D, 1e-6f);
	snprintf(what, sizeof what, "layernorm_fwd y M=%d D=%d", M, D);
	expect_dev(what, Y, y, n, 1e-5);
	snprintf(what, sizeof what, "layernorm_fwd mean M=%d D=%d", M, D);
	expect_dev(what, MU, mu, M, 1e-6);
	snprintf(what, sizeof what, "layernorm_fwd rstd M=%d D=%d", M, D);
	expect_dev(what, RS, rs, M, 1e-5);
	cpu->layernorm_bwd(dx, dw, db, dy, x, w, mu, rs, M, D);
	gpu->layernorm_bwd(DX, DW, DB, DY, X, W, MU, RS, M, D);
	snprintf(what, sizeof what, "layernorm_bwd dx (+=) M=%d D=%d", M, D);
	expect_dev(what, DX, dx, n, 2e-5);
	snprintf(what, sizeof what, "layernorm_bwd dw (+=) M=%d D=%d", M, D);
	expect_dev(what, DW, dw, D, 2e-5);
	snprintf(what, sizeof what, "layernorm_bwd db (+=) M=%d D=%d", M, D);
	expect_dev(what, DB, db, D, 2e-5);
	cpu->layernorm_bwd(NULL, NULL, db, dy, x, w, mu, rs, M, D);
	gpu->layernorm_bwd(NULL, NULL, DB, DY, X, W, MU, RS, M, D);
	snprintf(what, sizeof what, "layernorm_bwd db only M=%d D=%d", M, D);
	expect_dev(what, DB, db, D, 2e-5);
	gpu->layernorm_fwd(X, NULL, NULL, X, W, Bb, M, D, 1e-6f); /* aliased, no stats */
	snprintf(what, sizeof what, "layernorm_fwd aliased M=%d D=%d", M, D);
	expect_dev(what, X, y, n, 1e-5);
	float *ptrs[] = {X, W, Bb, Y, MU, RS, DY, DX, DW, DB};
	for (int i = 0; i < 10; i++)
		gpu->free(ptrs[i]);
	free(x); free(w); free(b); free(dy); free(y); free(mu); free(rs); free(dx); free(dw);
	free(db);
}

static void test_rmsnorm(int M, int D)
{
	char what[96];
	size_t n = (size_t)M * D;
	float *x = rand_host(n, 2), *w = rand_host(D, 1), *dy = rand_host(n, 1);
	float *y = xmalloc(n * 4), *rs = xmalloc(M * 4);
	float *dx = rand_host(n, 1), *dw = rand_host(D, 1);
	float *X = to_gpu(x, n * 4), *W = to_gpu(w, D * 4), *Y = to_gpu(NULL, n * 4);
	float *RS = to_gpu(NULL, M * 4), *DY = to_gpu(dy, n * 4), *DX = to_gpu(dx, n * 4);
	float *DW = to_gpu(dw, D * 4);
	cpu->rmsnorm_fwd(y, rs, x, w, M, D, 1e-5f);
	gpu->rmsnorm_fwd(Y, RS, X, W, M, D, 1e-5f);
	snprintf(what, sizeof what, "rmsnorm_fwd y M=%d D=%d", M, D);
	expect_dev(what, Y, y, n, 1e-5);
	snprintf(what, sizeof what, "rmsnorm_fwd rstd M=%d D=%d", M, D);
	expect_dev(what, RS, rs, M, 1e-5);
	cpu->rmsnorm_bwd(dx, dw, dy, x, w, rs, M, D);
	gpu->rmsnorm_bwd(DX, DW, DY, X, W, RS, M, D);
	snprintf(what, sizeof what, "rmsnorm_bwd dx (+=) M=%d D=%d", M, D);
	expect_dev(what, DX, dx, n, 2e-5);
	snprintf(what, sizeof what, "rmsnorm_bwd dw (+=) M=%d D=%d", M, D);
	expect_dev(what, DW, dw, D, 2e-5);
	gpu->rmsnorm_fwd(X, NULL, X, W, M, D, 1e-5f); /* aliased, no stats */
	snprintf(what, sizeof what, "rmsnorm_fwd aliased M=%d D=%d", M, D);
	expect_dev(what, X, y, n, 1e-5);
	float *ptrs[] = {X, W, Y, RS, DY, DX, DW};
	for (int i = 0; i < 7; i++)
		gpu->free(ptrs[i]);
	free(x); free(w); free(dy); free(y); free(rs); free(dx); free(dw);
}

/* ---- GEMMs ------------------------------------------------------------------ */

static void test_linear(int M, int in, int out, const char *prec, double tol)
{
	char what[128];
	size_t nx = (size_t)M * in, nw = (size_t)out * in, ny = (size_t)M * out;
	float *x = rand_host(nx, 1), *w = rand_host(nw, 0.2f), *b = rand_host(out, 1);
	float *y = rand_host(ny, 1), *dy = rand_host(ny, 1), *dx = rand_host(nx, 1);
	float *dw = rand_host(nw, 1), *db = rand_host(out, 1);
	float *X = to_gpu(x, nx * 4), *W = to_gpu(w, nw * 4), *Bb = to_gpu(b, out * 4);
	float *Y = to_gpu(y, ny * 4), *DY = to_gpu(dy, ny * 4), *DX = to_gpu(dx, nx * 4);
	float *DW = to_gpu(dw, nw * 4), *DB = to_gpu(db, out * 4);

	cpu->linear_fwd(y, x, w, b, M, in, out);
	gpu->linear_fwd(Y, X, W, Bb, M, in, out);
	snprintf(what, sizeof what, "linear_fwd %s M=%d in=%d out=%d", prec, M, in, out);
	expect_dev(what, Y, y, ny, tol);
	cpu->linear_fwd(y, x, w, NULL, M, in, out);
	gpu->linear_fwd(Y, X, W, NULL, M, in, out);
	snprintf(what, sizeof what, "linear_fwd no bias %s M=%d in=%d out=%d", prec, M, in, out);
	expect_dev(what, Y, y, ny, tol);
	cpu->linear_fwd_acc(y, x, w, b, M, in, out);
	gpu->linear_fwd_acc(Y, X, W, Bb, M, in, out);
	snprintf(what, sizeof what, "linear_fwd_acc %s M=%d in=%d out=%d", prec, M, in, out);
	expect_dev(what, Y, y, ny, tol);
	cpu->linear_bwd(dx, dw, db, dy, x, w, M, in, out);
	gpu->linear_bwd(DX, DW, DB, DY, X, W, M, in, out);
	snprintf(what, sizeof what, "linear_bwd dx (+=) %s M=%d in=%d out=%d", prec, M, in, out);
	expect_dev(what, DX, dx, nx, tol);
	snprintf(what, sizeof what, "linear_bwd dw (+=) %s M=%d in=%d out=%d", prec, M, in, out);
	expect_dev(what, DW, dw, nw, tol);
	snprintf(what, sizeof what, "linear_bwd db (+=) M=%d out=%d", M, out);
	expect_dev(what, DB, db, out, 2e-5);
	cpu->linear_bwd(NULL, dw, NULL, dy, x, w, M, in, out);
	gpu->linear_bwd(NULL, DW, NULL, DY, X, W, M, in, out);
	snprintf(what, sizeof what, "linear_bwd dw only %s M=%d in=%d out=%d", prec, M, in, out);
	expect_dev(what, DW, dw, nw, tol);
	cpu->patch_embed_fwd(y, x, w, b, M, in, out);
	gpu->patch_embed_fwd(Y, X, W, Bb, M, in, out);
	snprintf(what, sizeof what, "patch_embed_fwd %s M=%d P=%d D=%d", prec, M, in, out);
	expect_dev(what, Y, y, ny, tol);
	cpu->patch_embed_bwd(dw, db, dy, x, M, in, out);
	gpu->patch_embed_bwd(DW, DB, DY, X, M, in, out);
	snprintf(what, sizeof what, "patch_embed_bwd dw %s M=%d P=%d D=%d", prec, M, in, out);
	expect_dev(what, DW, dw, nw, tol);
	snprintf(what, sizeof what, "patch_embed_bwd db M=%d D=%d", M, out);
	expect_dev(what, DB, db, out, 2e-5);
	float *ptrs[] = {X, W, Bb, Y, DY, DX, DW, DB};
	for (int i = 0; i < 8; i++)
		gpu->free(ptrs[i]);
	free(x); free(w); free(b); free(y); free(dy); free(dx); free(dw); free(db);
}

/* ---- attention ----------------------------------------------------------- */

static const char *mask_name(aim_mask_kind m)
{
	return m == AIM_MASK_NONE ? "none" : m == AIM_MASK_CAUSAL ? "causal" : "prefix";
}

static void test_attention(int B, int K, int H, int hd, aim_mask_kind mask)
{
	char what[128], tag[80];
	snprintf(tag, sizeof tag, "B=%d K=%d H=%d hd=%d %s", B, K, H, hd, mask_name(mask));
	size_t D = (size_t)H * hd, nq = (size_t)B * K * 3 * D, no = (size_t)B * K * D;
	size_t nl = (size_t)B * H * K;
	int *prefix = xmalloc(sizeof(int) * B);
	for (int b = 0; b < B; b++) /* 1 .. K-1, one sample past a tile edge */
		prefix[b] = K > 1 ? 1 + (b * 37 + K / 2) % (K - 1) : 1;
	const int *pf = mask == AIM_MASK_PREFIX ? prefix : NULL;
	float *qkv = rand_host(nq, 2), *out = xmalloc(no * 4), *lse = xmalloc(nl * 4);
	float *dout = rand_host(no, 1), *dqkv = rand_host(nq, 1);
	float *Q = to_gpu(qkv, nq * 4), *O = to_gpu(NULL, no * 4), *L = to_gpu(NULL, nl * 4);
	float *DO = to_gpu(dout, no * 4), *DQ = to_gpu(dqkv, nq * 4);
	float *DQ2 = to_gpu(dqkv, nq * 4);

	cpu->attention_fwd(out, lse, qkv, B, K, H, hd, mask, pf);
	gpu->attention_fwd(O, L, Q, B, K, H, hd, mask, pf);
	snprintf(what, sizeof what, "attention_fwd out %s", tag);
	expect_dev(what, O, out, no, 2e-5);
	snprintf(what, sizeof what, "attention_fwd lse %s", tag);
	expect_dev(what, L, lse, nl, 2e-5);
	/* the backward from the reference forward: isolates the backward */
	gpu->upload(O, out, no * 4);
	gpu->upload(L, lse, nl * 4);
	cpu->attention_bwd(dqkv, dout, qkv, out, lse, B, K, H, hd, mask, pf);
	gpu->attention_bwd(DQ, DO, Q, O, L, B, K, H, hd, mask, pf);
	snprintf(what, sizeof what, "attention_bwd dqkv (+=) %s", tag);
	expect_dev(what, DQ, dqkv, nq, 5e-5);
	/* the same call again gives the same bits (no atomics in the tiles) */
	if (hd <= 128) {
		gpu->attention_bwd(DQ2, DO, Q, O, L, B, K, H, hd, mask, pf);
		float *a = from_gpu(DQ, nq), *c = from_gpu(DQ2, nq);
		checks++;
		if (memcmp(a, c, nq * 4)) {
			failures++;
			printf("FAIL attention_bwd is not deterministic %s <-\n", tag);
		} else if (verbose) {
			printf("ok   attention_bwd deterministic %s\n", tag);
		}
		free(a);
		free(c);
	}
	gpu->free(Q); gpu->free(O); gpu->free(L); gpu->free(DO); gpu->free(DQ); gpu->free(DQ2);
	free(prefix); free(qkv); free(out); free(lse); free(dout); free(dqkv);
}

/* The same host prefix array, changed in place between calls: the backend
 * must not reuse stale lengths it uploaded before. */
static void test_prefix_reuse(void)
{
	const int B = 3, K = 100, H = 2, hd = 64;
	size_t nq = (size_t)B * K * 3 * H * hd, no = (size_t)B * K * H * hd;
	int prefix[3] = {10, 50, 99};
	float *qkv = rand_host(nq, 2), *out = xmalloc(no * 4);
	float *Q = to_gpu(qkv, nq * 4), *O = to_gpu(NULL, no * 4);
	for (int round = 0; round < 3; round++) {
		char what[96];
		cpu->attention_fwd(out, NULL, qkv, B, K, H, hd, AIM_MASK_PREFIX, prefix);
		gpu->attention_fwd(O, NULL, Q, B, K, H, hd, AIM_MASK_PREFIX, prefix);
		snprintf(what, sizeof what, "attention_fwd prefix array reused, round %d", round);
		expect_dev(what, O, out, no, 2e-5);
		for (int b = 0; b < B; b++)
			prefix[b] = 1 + (prefix[b] * 7 + round) % (K - 1);
	}
	gpu->free(Q); gpu->free(O);
	free(qkv); free(out);
}

/* ---- the whole trunk: forward and backward of a small model ----------------- */

/* A 2-block model with biases everywhere, the same weights on both
 * backends, a prefix-masked training forward with the post-trunk norm,
 * then the backward from the norm's output: every block output, the
 * normed output and every parameter gradient compared. */
static void test_model(int dim, int heads, int grid)
{
	aim_config c;
	memset(&c, 0, sizeof c);
	c.grid_rows = c.grid_cols = grid;
	c.patch = 14;
	c.channels = 3;
	c.dim = dim;
	c.depth = 2;
	c.heads = heads;
	c.mlp_hidden = 4 * dim;
	c.proj_bias = c.mlp_bias = 1;
	aim_model *mc = NULL, *mg = NULL;
	if (aim_model_create(&mc, &c, cpu) || aim_model_init_params(mc, 7) ||
	    aim_model_create(&mg, &c, gpu) || aim_model_alloc_params(mg)) {
		checks++;
		failures++;
		printf("FAIL model setup: %s <-\n", aim_errmsg());
		aim_model_free(mc);
		aim_model_free(mg);
		return;
	}
	/* the same weights: the arenas share one layout */
	gpu->upload(mg->arena, mc->arena, mc->arena_floats * sizeof(float));
	/* LayerNorm weights and biases away from 1 and 0, biases non-zero */
	float *host = from_gpu(mg->arena, mg->arena_floats);
	for (int i = 0; i < mc->nparams; i++)
		if (mc->info[i].ndim == 1)
			for (size_t j = 0; j < mc->info[i].numel; j++)
				host[mc->info[i].offset + j] += 0.1f * urandf();
	memcpy(mc->arena, host, mc->arena_floats * sizeof(float));
	gpu->upload(mg->arena, host, mg->arena_floats * sizeof(float));
	free(host);

	const int B = 3, K = grid * grid, P = 3 * 14 * 14, D = dim;
	int prefix[3] = {1, K / 2, K - 1};
	float *patches = rand_host((size_t)B * K * P, 1);
	float *PT = to_gpu(patches, sizeof(float) * B * K * P);
	aim_forward_opts o = {.mask = AIM_MASK_PREFIX, .prefix = prefix, .train = 1, .post_norm = 1};
	char what[96];
	if (aim_model_alloc_grads(mc) || aim_model_alloc_grads(mg) ||
	    aim_model_forward(mc, patches, B, grid, grid, &o) ||
	    aim_model_forward(mg, PT, B, grid, grid, &o)) {
		checks++;
		failures++;
		printf("FAIL model forward: %s <-\n", aim_errmsg());
		goto out;
	}
	const size_t n = (size_t)B * K * D;
	for (int l = 0; l < c.depth; l++) {
		snprintf(what, sizeof what, "model D=%d H=%d K=%d: block %d output", dim, heads, K, l);
		expect_dev(what, aim_model_block_output(mg, l), aim_model_block_output(mc, l), n, 1e-4);
	}
	snprintf(what, sizeof what, "model D=%d H=%d K=%d: post-norm output", dim, heads, K);
	expect_dev(what, aim_model_normed(mg), aim_model_normed(mc), n, 1e-4);

	float *dy = rand_host(n, 1), *DY = to_gpu(dy, n * sizeof(float));
	if (aim_model_backward(mc, dy, 1) || aim_model_backward(mg, DY, 1)) {
		checks++;
		failures++;
		printf("FAIL model backward: %s <-\n", aim_errmsg());
	} else {
		float *g = from_gpu(mg->grad_arena, mg->arena_floats);
		for (int i = 0; i < mc->nparams; i++) {
			const aim_param_info *p = &mc->info[i];
			snprintf(what, sizeof what, "model grad %s", p->name);
			expect(what, g + p->offset, mc->grad_arena + p->offset, p->numel, 2e-4);
		}
		free(g);
	}
	gpu->free(DY);
	free(dy);
out:
	gpu->free(PT);
	free(patches);
	aim_model_free(mc);
	aim_model_free(mg);
}

/* ---- training kernels (aim_cuda_extra.h) ------------------------------------ */

/* ---- the table itself ---------------------------------------------------- */

/* Every field after the header is a function; only the documented optional
 * ones (parallel_groups, max_threads) may be NULL. A field backend.h added
 * that the library does not fill shows here, by offset. */
static void test_table(void)
{
	typedef void (*fn)(void);
	const size_t first = offsetof(aim_backend, alloc);
	const size_t nfields = (sizeof(aim_backend) - first) / sizeof(fn);
	int missing = 0;
	for (size_t i = 0; i < nfields; i++) {
		const size_t off = first + i * sizeof(fn);
		if (off == offsetof(aim_backend, parallel_groups) ||
		    off == offsetof(aim_backend, max_threads))
			continue;
		fn f;
		memcpy(&f, (const char *)gpu + off, sizeof f);
		if (!f) {
			printf("FAIL table field at offset %zu is NULL <-\n", off);
			missing++;
		}
	}
	checks++;
	failures += missing > 0;
	if (!missing && verbose)
		printf("ok   every table field is filled (%zu)\n", nfields);
	if (gpu->describe) {
		const char *d = gpu->describe();
		checks++;
		if (!d || !*d) {
			failures++;
			printf("FAIL describe() is empty <-\n");
		} else if (verbose) {
			printf("ok   describe: %s\n", d);
		}
	}
	if (gpu->set_precision) {
		checks++;
		if (gpu->set_precision("fp32") != 0 || gpu->set_precision("fp8") != -1) {
			failures++;
			printf("FAIL set_precision: fp32 refused or fp8 accepted <-\n");
		}
	}
}

static void test_training(void)
{
	if (!gpu->pixloss_targets || !gpu->pixloss_forward || !gpu->pixloss_backward ||
	    !gpu->adamw || !gpu->sumsq || !gpu->gather_rows || !gpu->scatter_rows)
		return; /* test_table reported it */
	const int B = 5, K = 64, P = 588;
	int prefix[5] = {1, 7, 33, 63, 20};
	const long np = (long)B * K;
	const size_t n = (size_t)np * P;
	float *x = rand_host(n, 2), *t = xmalloc(n * 4), *st = xmalloc(np * 2 * 4);
	float *X = to_gpu(x, n * 4), *T = to_gpu(NULL, n * 4), *ST = to_gpu(NULL, np * 2 * 4);
	for (int norm = 0; norm < 2; norm++) {
		aim_pixloss_targets(t, x, np, P, norm, st);
		gpu->pixloss_targets(T, X, np, P, norm, ST);
		expect_dev(norm ? "pixloss_targets norm_pix" : "pixloss_targets copy", T, t, n, 1e-6);
		expect_dev("pixloss_targets stats", ST, st, np * 2, 1e-6);
	}
	int *rows = xmalloc(sizeof(int) * np);
	const long M = aim_pixloss_rows(prefix, B, K, rows);
	const size_t nm = (size_t)M * P;
	float *pred = rand_host(nm, 1), *dp = xmalloc(nm * 4);
	float *PR = to_gpu(pred, nm * 4), *DP = to_gpu(NULL, nm * 4);
	int *RW = to_gpu(rows, sizeof(int) * M);
	double denom = (double)aim_pixloss_count(prefix, B, K);
	float want = (float)aim_pixloss_forward(pred, t, rows, M, P, denom);
	float got = (float)gpu->pixloss_forward(PR, T, rows, M, P, denom);
	expect("pixloss_forward (host rows)", &got, &want, 1, 1e-6);
	got = (float)gpu->pixloss_forward(PR, T, RW, M, P, denom);
	expect("pixloss_forward (device rows)", &got, &want, 1, 1e-6);
	aim_pixloss_backward(pred, t, rows, M, P, denom, dp);
	gpu->pixloss_backward(PR, T, rows, M, P, denom, DP);
	expect_dev("pixloss_backward", DP, dp, nm, 1e-6);

	/* the head's rows: gather from [B·K, D], scatter the gradients back */
	const int D = 384;
	float *src = rand_host((size_t)np * D, 1), *gat = xmalloc((size_t)M * D * 4);
	float *sca = calloc((size_t)np * D, 4);
	for (long i = 0; i < M; i++) {
		memcpy(gat + i * D, src + (size_t)rows[i] * D, D * 4);
		memcpy(sca + (size_t)rows[i] * D, gat + i * D, D * 4);
	}
	float *SRC = to_gpu(src, (size_t)np * D * 4), *GAT = to_gpu(NULL, (size_t)M * D * 4);
	float *SCA = to_gpu(NULL, (size_t)np * D * 4);
	gpu->gather_rows(GAT, SRC, rows, M, D);
	expect_dev("gather_rows", GAT, gat, (size_t)M * D, 0);
	gpu->scatter_rows(SCA, GAT, rows, M, D);
	expect_dev("scatter_rows", SCA, sca, (size_t)np * D, 0);
	gpu->free(SRC); gpu->free(GAT); gpu->free(SCA); gpu->free(RW);
	free(src); free(gat); free(sca); free(rows);

	const long nw = 100003;
	float *w = rand_host(nw, 1), *g = rand_host(nw, 1), *m = calloc(nw, 4), *v = calloc(nw, 4);
	float *W = to_gpu(w, nw * 4), *G = to_gpu(g, nw * 4), *MM = to_gpu(NULL, nw * 4);
	float *V = to_gpu(NULL, nw * 4);
	for (long step = 1; step <= 3; step++) { /* decay on the first two steps only */
		aim_adamw_tensor(w, m, v, g, nw, 3e-4, 0.9, 0.95, 1e-8, 0.05, step < 3, step);
		gpu->adamw(W, MM, V, G, nw, 3e-4, 0.9, 0.95, 1e-8, 0.05, step < 3, step);
	}
	expect_dev("adamw weights (3 steps)", W, w, nw, 1e-6);
	expect_dev("adamw first moment", MM, m, nw, 1e-6);
	expect_dev("adamw second moment", V, v, nw, 1e-6);
	float ss_cpu = (float)aim_sumsq(g, nw), ss_gpu = (float)gpu->sumsq(G, nw);
	expect("sumsq (gradient norm)", &ss_gpu, &ss_cpu, 1, 1e-6);
	gpu->free(X); gpu->free(T); gpu->free(ST); gpu->free(PR); gpu->free(DP);
	gpu->free(W); gpu->free(G); gpu->free(MM); gpu->free(V);
	free(x); free(t); free(st); free(pred); free(dp); free(w); free(g); free(m); free(v);
}

int main(int argc, char **argv)
{
	int self = 0;
	for (int i = 1; i < argc; i++) {
		verbose |= !strcmp(argv[i], "-v");
		self |= !strcmp(argv[i], "--self");
	}
	if (self) { /* the harness itself: CPU against CPU, every error 0 */
		cpu = gpu = aim_backend_cpu();
	} else {
		int rc = gpu_open("test_backend_ops");
		if (rc)
			return rc;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("test_backend_ops: %s backend: %s\n", gpu->name,
	       gpu->describe ? gpu->describe() : "(no description)");
	checks++;
	if (!self && (gpu->abi != AIM_BACKEND_ABI || strcmp(gpu->name, "cuda") || gpu->host_memory)) {
		failures++;
		printf("FAIL table header: abi %d name %s host_memory %d <-\n", gpu->abi, gpu->name,
		       gpu->host_memory);
	}
	test_memory();
	test_empty();
	test_elementwise(100003);
	test_elementwise(7);
	test_softmax(50, 1000);
	test_softmax(1000, 7);
	test_layernorm(1000, 384);
	test_layernorm(3, 1536);
	test_layernorm(70, 100);
	test_layernorm(20000, 64); /* 256 row chunks of 79 for dw, db */
	test_rmsnorm(1000, 1024);
	test_rmsnorm(70, 100);
	test_rmsnorm(20000, 64);

	/* GEMMs at each precision the library offers */
	const char *precs[] = {"fp32", "tf32", "bf16"};
	const double tols[] = {2e-5, 4e-3, 3e-2};
	const char *initial = ext.get_precision ? ext.get_precision() : NULL;
	for (int p = 0; p < 3; p++) {
		if (!gpu->set_precision || self) {
			if (p)
				break;
		} else if (gpu->set_precision(precs[p]) < 0) {
			checks++;
			failures++;
			printf("FAIL set_precision(%s) refused <-\n", precs[p]);
			continue;
		}
		test_linear(300, 384, 1152, precs[p], tols[p]);
		test_linear(7, 5, 3, precs[p], tols[p]);
		test_linear(1, 1536, 6144, precs[p], tols[p]);
		if (p == 2) { /* LoRA factors and adapter bottlenecks stay fp32 in bf16 mode */
			test_linear(300, 384, 8, "bf16, out 8", tols[0]);
			test_linear(300, 8, 384, "bf16, in 8", tols[0]);
			test_linear(300, 1536, 32, "bf16, out 32", tols[0]);
		}
	}
	if (gpu->set_precision && initial && !self)
		gpu->set_precision(initial);

	const aim_mask_kind masks[] = {AIM_MASK_NONE, AIM_MASK_CAUSAL, AIM_MASK_PREFIX};
	for (int m = 0; m < 3; m++) {
		test_attention(2, 256, 6, 64, masks[m]);  /* ViT-S/14 at 224 px */
		test_attention(1, 257, 4, 128, masks[m]); /* AIM-600M+ head dim, odd K */
		test_attention(3, 37, 2, 32, masks[m]);
		test_attention(2, 70, 3, 48, masks[m]);   /* padded to 64 */
		test_attention(1, 65, 2, 80, masks[m]);   /* padded to 128 */
		test_attention(2, 33, 2, 200, masks[m]);  /* warp-per-row kernels */
		test_attention(1, 1, 1, 64, masks[m]);
	}
	test_prefix_reuse();
	test_model(128, 2, 4);  /* hd 64 */
	test_model(192, 3, 5);  /* K 25 */
	test_table();
	test_training();
	gpu->synchronize();
	printf("test_backend_ops: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
