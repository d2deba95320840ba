/* The CUDA backend's kernels run on the CPU through the emulation of
 * common/cuda/emu.cuh, checked against the CPU ops (the oracle). This
 * tests the kernels' logic — tiling, masks, online softmax, reductions,
 * barriers — on machines without a GPU; test_backend_ops.c tests the real
 * thing on a GPU. Built and run by tests/gpu/emu_check.sh. cuBLAS (the
 * linear ops) cannot be emulated and is covered on the GPU only. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include <type_traits>
#include <vector>

#include "cuda/aim_cuda_extra.h"
#include "cuda/cuda_blas.cuh"
#include "cuda/cuda_util.cuh"
#include "cuda/ops_cuda.cuh"

extern "C" {
#include "backend.h"
#include "err.h"
#include "model.h"
#include "train_loss.h"
#include "train_optim.h"
#include "train_rng.h"
#include "train_step.h"
}

/* ---- the backend services the op files call, on the host ---------------- */

[[noreturn]] void aim_cuda_fail(const char *op, const char *call, const char *why)
{
	fprintf(stderr, "emu: %s failed (%s): %s\n", op, call, why);
	abort();
}
void aim_cuda_launched(const char *) {}
cudaStream_t aim_cuda_stream(void) { return nullptr; }
void *aim_cuda_scratch(int slot, size_t bytes)
{
	static std::vector<unsigned char> s[AIM_SCRATCH_SLOTS];
	if (s[slot].size() < bytes) {
		s[slot].assign(bytes, 0xff); /* NaN everywhere: unwritten reads show */
	}
	return s[slot].data();
}
const int *aim_cuda_ints(int, const int *p, long) { return p; }
void aim_cuda_fetch(void *host, const void *dev, size_t bytes, const char *)
{
	memcpy(host, dev, bytes);
}

/* cuBLAS as its manual defines it: column-major, op(A) m×k, op(B) k×n,
 * C m×n; leading dimensions checked as cuBLAS checks them. */
cublasHandle_t aim_cuda_blas(void) { return nullptr; }
static cublasComputeType_t g_compute = CUBLAS_COMPUTE_32F;
cublasComputeType_t aim_cuda_compute_type(void) { return g_compute; }
/* CUBLAS_COMPUTE_32F_FAST_16BF: operands rounded to bf16 (nearest even). */
static float to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
	memcpy(&f, &u, sizeof f);
	return f;
}
const char *cublasGetStatusString(cublasStatus_t) { return "invalid value"; }
cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
			    int n, int k, const void *alpha, const void *A, cudaDataType, int lda,
			    const void *B, cudaDataType, int ldb, const void *beta, void *C,
			    cudaDataType, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t)
{
	const bool bf16 = compute == CUBLAS_COMPUTE_32F_FAST_16BF;
	if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? m : k) || lda < 1 ||
	    ldb < (tb == CUBLAS_OP_N ? k : n) || ldb < 1 || ldc < m || ldc < 1)
		return CUBLAS_STATUS_INVALID_VALUE;
	const float *a = (const float *)A, *b = (const float *)B;
	float *c = (float *)C, al = *(const float *)alpha, be = *(const float *)beta;
	for (int j = 0; j < n; j++)
		for (int i = 0; i < m; i++) {
			double s = 0;
			for (int p = 0; p < k; p++) {
				float x = ta == CUBLAS_OP_N ? a[i + (size_t)p * lda] : a[p + (size_t)i * lda];
				float y = tb == CUBLAS_OP_N ? b[p + (size_t)j * ldb] : b[j + (size_t)p * ldb];
				if (bf16)
					x = to_bf16(x), y = to_bf16(y);
				s += (double)x * y;
			}
			float *o = c + i + (size_t)j * ldc;
			*o = (float)(al * s + (be == 0.0f ? 0.0 : (double)be * *o));
		}
	return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSgemv(cublasHandle_t, cublasOperation_t t, int m, int n, const float *alpha,
			   const float *A, int lda, const float *x, int incx, const float *beta,
			   float *y, int incy)
{
	if (t != CUBLAS_OP_N || lda < m || lda < 1 || incx != 1 || incy != 1)
		return CUBLAS_STATUS_INVALID_VALUE;
	for (int i = 0; i < m; i++) {
		double s = 0;
		for (int j = 0; j < n; j++)
			s += (double)A[i + (size_t)j * lda] * x[j];
		y[i] = (float)(*alpha * s + (*beta == 0.0f ? 0.0 : (double)*beta * y[i]));
	}
	return CUBLAS_STATUS_SUCCESS;
}

/* ---- checks ---------------------------------------------------------------- */

static int failures, checks;
static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static float urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static std::vector<float> rnd(size_t n, float scale = 1.0f)
{
	std::vector<float> v(n);
	for (auto &x : v)
		x = urand() * scale;
	return v;
}

/* max |a−b| over max(1, max |b|): a relative error for the whole tensor. */
static void compare(const char *what, const float *a, const float *b, size_t n, double tol)
{
	double worst = 0, ref = 1;
	size_t at = 0;
	for (size_t i = 0; i < n; i++)
		ref = fmax(ref, fabs(b[i]));
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)a[i] - b[i]);
		if (!(e <= worst)) { /* NaN counts as worst */
			worst = isnan(e) ? INFINITY : e;
			at = i;
		}
	}
	checks++;
	if (!(worst / ref <= tol)) {
		failures++;
		fprintf(stderr, "FAIL %s: [%zu] %g vs %g (error %.3g of %.3g)\n", what, at, a[at], b[at],
			worst / ref, tol);
	}
}

static void test_elementwise(void)
{
	const size_t n = 1000;
	auto a = rnd(n, 3), b = rnd(n, 3), y = rnd(n), yc = y;
	cuda_add_fwd(y.data(), a.data(), b.data(), n);
	aim_add_fwd(yc.data(), a.data(), b.data(), n);
	compare("add_fwd", y.data(), yc.data(), n, 0);
	cuda_add_rows(y.data(), b.data(), 4, 250);
	aim_add_rows(yc.data(), b.data(), 4, 250);
	compare("add_rows", y.data(), yc.data(), n, 0);
	cuda_axpy(y.data(), 0.3f, a.data(), n);
	aim_axpy(yc.data(), 0.3f, a.data(), n);
	compare("axpy", y.data(), yc.data(), n, 1e-7);
	cuda_scale(y.data(), -1.7f, y.data(), n);
	aim_scale(yc.data(), -1.7f, yc.data(), n);
	compare("scale (aliased)", y.data(), yc.data(), n, 1e-7);
	const float sr[4] = {0, 1.25f, 2.5f, 1};
	cuda_add_scaled_rows(y.data(), a.data(), sr, b.data(), 4, 250);
	aim_add_scaled_rows(yc.data(), a.data(), sr, b.data(), 4, 250);
	compare("add_scaled_rows", y.data(), yc.data(), n, 1e-7);
	cuda_add_scaled_rows(y.data(), NULL, sr, y.data(), 4, 250);
	aim_add_scaled_rows(yc.data(), NULL, sr, yc.data(), 4, 250);
	compare("add_scaled_rows (no a, aliased)", y.data(), yc.data(), n, 1e-7);

	auto x = rnd(n, 5), g = rnd(n), dx = rnd(n), dxc = dx;
	std::vector<float> gy(n), gyc(n);
	cuda_gelu_fwd(gy.data(), x.data(), n);
	aim_gelu_fwd(gyc.data(), x.data(), n);
	compare("gelu_fwd", gy.data(), gyc.data(), n, 1e-6);
	cuda_gelu_bwd(dx.data(), g.data(), x.data(), n);
	aim_gelu_bwd(dxc.data(), g.data(), x.data(), n);
	compare("gelu_bwd (accumulates)", dx.data(), dxc.data(), n, 1e-6);

	auto b3 = rnd(n, 2), da = rnd(n), dac = da, db = rnd(n), dbc = db;
	cuda_swiglu_fwd(gy.data(), x.data(), b3.data(), n);
	aim_swiglu_fwd(gyc.data(), x.data(), b3.data(), n);
	compare("swiglu_fwd", gy.data(), gyc.data(), n, 1e-6);
	cuda_swiglu_bwd(da.data(), db.data(), g.data(), x.data(), b3.data(), n);
	aim_swiglu_bwd(dac.data(), dbc.data(), g.data(), x.data(), b3.data(), n);
	compare("swiglu_bwd da (accumulates)", da.data(), dac.data(), n, 1e-6);
	compare("swiglu_bwd db (accumulates)", db.data(), dbc.data(), n, 1e-6);
	auto xa = x;
	cuda_swiglu_fwd(xa.data(), xa.data(), b3.data(), n);
	compare("swiglu_fwd (aliased)", xa.data(), gyc.data(), n, 1e-6);
}

static void test_linear(int M, int in, int out)
{
	auto x = rnd((size_t)M * in), w = rnd((size_t)out * in), b = rnd(out);
	auto y = rnd((size_t)M * out), yc = y;
	cuda_linear_fwd(y.data(), x.data(), w.data(), b.data(), M, in, out);
	aim_linear_fwd(yc.data(), x.data(), w.data(), b.data(), M, in, out);
	compare("linear_fwd", y.data(), yc.data(), y.size(), 1e-6);
	cuda_linear_fwd(y.data(), x.data(), w.data(), NULL, M, in, out);
	aim_linear_fwd(yc.data(), x.data(), w.data(), NULL, M, in, out);
	compare("linear_fwd (no bias)", y.data(), yc.data(), y.size(), 1e-6);
	cuda_linear_fwd_acc(y.data(), x.data(), w.data(), b.data(), M, in, out);
	aim_linear_fwd_acc(yc.data(), x.data(), w.data(), b.data(), M, in, out);
	compare("linear_fwd_acc", y.data(), yc.data(), y.size(), 1e-6);
	cuda_linear_gelu_fwd(y.data(), x.data(), w.data(), b.data(), M, in, out);
	aim_linear_gelu_fwd(yc.data(), x.data(), w.data(), b.data(), M, in, out);
	compare("linear_gelu_fwd", y.data(), yc.data(), y.size(), 1e-6);
	auto dy = rnd((size_t)M * out), dx = rnd((size_t)M * in), dxc = dx;
	auto dw = rnd((size_t)out * in), dwc = dw, db = rnd(out), dbc = db;
	cuda_linear_bwd(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), M, in, out);
	aim_linear_bwd(dxc.data(), dwc.data(), dbc.data(), dy.data(), x.data(), w.data(), M, in, out);
	compare("linear_bwd dx", dx.data(), dxc.data(), dx.size(), 1e-6);
	compare("linear_bwd dw", dw.data(), dwc.data(), dw.size(), 1e-6);
	compare("linear_bwd db", db.data(), dbc.data(), db.size(), 1e-6);
	cuda_patch_embed_bwd(dw.data(), db.data(), dy.data(), x.data(), M, in, out);
	aim_patch_embed_bwd(dwc.data(), dbc.data(), dy.data(), x.data(), M, in, out);
	compare("patch_embed_bwd dw", dw.data(), dwc.data(), dw.size(), 1e-6);
	compare("patch_embed_bwd db", db.data(), dbc.data(), db.size(), 1e-6);
}

static void test_softmax(int M, int N)
{
	auto x = rnd((size_t)M * N, 4), y = x, yc = x, g = rnd((size_t)M * N);
	auto dx = rnd((size_t)M * N), dxc = dx;
	cuda_softmax_fwd(y.data(), y.data(), M, N); /* aliased, as allowed */
	aim_softmax_fwd(yc.data(), x.data(), M, N);
	compare("softmax_fwd", y.data(), yc.data(), y.size(), 1e-6);
	cuda_softmax_bwd(dx.data(), g.data(), yc.data(), M, N);
	aim_softmax_bwd(dxc.data(), g.data(), yc.data(), M, N);
	compare("softmax_bwd", dx.data(), dxc.data(), dx.size(), 1e-6);
}

static void test_layernorm(int M, int D)
{
	size_t n = (size_t)M * D;
	auto x = rnd(n, 2), w = rnd(D), b = rnd(D), dy = rnd(n);
	for (size_t i = 0; i < n; i++)
		x[i] += 10.0f; /* a large mean: the two-pass variance matters */
	std::vector<float> y(n), yc(n), mu(M), rs(M), muc(M), rsc(M);
	cuda_layernorm_fwd(y.data(), mu.data(), rs.data(), x.data(), w.data(), b.data(), M, D, 1e-6f);
	aim_layernorm_fwd(yc.data(), muc.data(), rsc.data(), x.data(), w.data(), b.data(), M, D, 1e-6f);
	compare("layernorm_fwd y", y.data(), yc.data(), n, 2e-6);
	compare("layernorm_fwd mean", mu.data(), muc.data(), M, 1e-6);
	compare("layernorm_fwd rstd", rs.data(), rsc.data(), M, 1e-5);
	auto dx = rnd(n), dxc = dx, dw = rnd(D), dwc = dw, db = rnd(D), dbc = db;
	cuda_layernorm_bwd(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(),
			   muc.data(), rsc.data(), M, D);
	aim_layernorm_bwd(dxc.data(), dwc.data(), dbc.data(), dy.data(), x.data(), w.data(),
			  muc.data(), rsc.data(), M, D);
	compare("layernorm_bwd dx", dx.data(), dxc.data(), n, 1e-5);
	compare("layernorm_bwd dw", dw.data(), dwc.data(), D, 1e-5);
	compare("layernorm_bwd db", db.data(), dbc.data(), D, 1e-5);
	/* only dw wanted */
	auto dw2 = rnd(D), dw2c = dw2;
	cuda_layernorm_bwd(NULL, dw2.data(), NULL, dy.data(), x.data(), w.data(), muc.data(),
			   rsc.data(), M, D);
	aim_layernorm_bwd(NULL, dw2c.data(), NULL, dy.data(), x.data(), w.data(), muc.data(),
			  rsc.data(), M, D);
	compare("layernorm_bwd dw only", dw2.data(), dw2c.data(), D, 1e-5);
}

static void test_rmsnorm(int M, int D)
{
	size_t n = (size_t)M * D;
	auto x = rnd(n, 2), w = rnd(D), dy = rnd(n);
	std::vector<float> y(n), yc(n), rs(M), rsc(M);
	cuda_rmsnorm_fwd(y.data(), rs.data(), x.data(), w.data(), M, D, 1e-5f);
	aim_rmsnorm_fwd(yc.data(), rsc.data(), x.data(), w.data(), M, D, 1e-5f);
	compare("rmsnorm_fwd y", y.data(), yc.data(), n, 2e-6);
	compare("rmsnorm_fwd rstd", rs.data(), rsc.data(), M, 1e-5);
	auto dx = rnd(n), dxc = dx, dw = rnd(D), dwc = dw;
	cuda_rmsnorm_bwd(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rsc.data(), M, D);
	aim_rmsnorm_bwd(dxc.data(), dwc.data(), dy.data(), x.data(), w.data(), rsc.data(), M, D);
	compare("rmsnorm_bwd dx", dx.data(), dxc.data(), n, 1e-5);
	compare("rmsnorm_bwd dw", dw.data(), dwc.data(), D, 1e-5);
	auto dx2 = rnd(n), dx2c = dx2;
	cuda_rmsnorm_bwd(dx2.data(), NULL, dy.data(), x.data(), w.data(), rsc.data(), M, D);
	aim_rmsnorm_bwd(dx2c.data(), NULL, dy.data(), x.data(), w.data(), rsc.data(), M, D);
	compare("rmsnorm_bwd dx only", dx2.data(), dx2c.data(), n, 1e-5);
	auto ya = x;
	cuda_rmsnorm_fwd(ya.data(), NULL, ya.data(), w.data(), M, D, 1e-5f);
	compare("rmsnorm_fwd (aliased)", ya.data(), yc.data(), n, 2e-6);
}

static void test_attention(int B, int K, int H, int hd, aim_mask_kind mask, const int *prefix)
{
	char what[160];
	snprintf(what, sizeof what, "attention B=%d K=%d H=%d hd=%d mask=%d", B, K, H, hd, (int)mask);
	const size_t D = (size_t)H * hd, nq = (size_t)B * K * 3 * D, no = (size_t)B * K * D;
	auto qkv = rnd(nq, 1.5f), dout = rnd(no);
	std::vector<float> out(no, NAN), outc(no), lse((size_t)B * H * K, NAN), lsec(lse.size());
	cuda_attention_fwd(out.data(), lse.data(), qkv.data(), B, K, H, hd, mask, prefix);
	aim_attention_fwd(outc.data(), lsec.data(), qkv.data(), B, K, H, hd, mask, prefix);
	char w2[200];
	snprintf(w2, sizeof w2, "%s out", what);
	compare(w2, out.data(), outc.data(), no, 2e-6);
	snprintf(w2, sizeof w2, "%s lse", what);
	compare(w2, lse.data(), lsec.data(), lse.size(), 2e-6);
	/* without lse */
	std::vector<float> out2(no, NAN);
	cuda_attention_fwd(out2.data(), NULL, qkv.data(), B, K, H, hd, mask, prefix);
	snprintf(w2, sizeof w2, "%s out (no lse)", what);
	compare(w2, out2.data(), outc.data(), no, 2e-6);

	auto dqkv = rnd(nq), dqkvc = dqkv; /* backward accumulates */
	cuda_attention_bwd(dqkv.data(), dout.data(), qkv.data(), outc.data(), lsec.data(), B, K, H,
			   hd, mask, prefix);
	aim_attention_bwd(dqkvc.data(), dout.data(), qkv.data(), outc.data(), lsec.data(), B, K, H,
			  hd, mask, prefix);
	snprintf(w2, sizeof w2, "%s dqkv", what);
	compare(w2, dqkv.data(), dqkvc.data(), nq, 1e-5);
}

static void test_pixloss(void)
{
	const int B = 3, K = 9, P = 12;
	const int prefix[B] = {1, 4, 8};
	const long np = (long)B * K;
	auto x = rnd((size_t)np * P, 2);
	for (int norm = 0; norm < 2; norm++) {
		std::vector<float> t(x.size()), tc(x.size()), st(2 * np), stc(2 * np);
		aim_cuda_pixloss_targets(t.data(), x.data(), np, P, norm, st.data());
		aim_pixloss_targets(tc.data(), x.data(), np, P, norm, stc.data());
		compare("pixloss_targets", t.data(), tc.data(), t.size(), 1e-6);
		compare("pixloss_targets stats", st.data(), stc.data(), st.size(), 1e-6);
	}
	std::vector<float> t(x.size());
	aim_pixloss_targets(t.data(), x.data(), np, P, 1, NULL);
	std::vector<int> rows(np);
	const long M = aim_pixloss_rows(prefix, B, K, rows.data());
	auto pred = rnd((size_t)M * P);
	double denom = (double)aim_pixloss_count(prefix, B, K);
	float l = (float)aim_cuda_pixloss_forward(pred.data(), t.data(), rows.data(), M, P, denom);
	float lc = (float)aim_pixloss_forward(pred.data(), t.data(), rows.data(), M, P, denom);
	compare("pixloss_forward", &l, &lc, 1, 1e-6);
	auto d = rnd(pred.size()), dc = rnd(pred.size());
	aim_cuda_pixloss_backward(pred.data(), t.data(), rows.data(), M, P, denom, d.data());
	aim_pixloss_backward(pred.data(), t.data(), rows.data(), M, P, denom, dc.data());
	compare("pixloss_backward", d.data(), dc.data(), d.size(), 1e-6);
	/* gather the predicting rows of a [B·K, D] tensor, scatter them back */
	const int D = 5;
	auto src = rnd((size_t)np * D);
	std::vector<float> g((size_t)M * D, NAN), gc(g), sc(src.size(), 0.0f), s2(sc);
	for (long i = 0; i < M; i++)
		for (int j = 0; j < D; j++) {
			gc[i * D + j] = src[(size_t)rows[i] * D + j];
			s2[(size_t)rows[i] * D + j] = gc[i * D + j];
		}
	aim_cuda_gather_rows(g.data(), src.data(), rows.data(), M, D);
	compare("gather_rows", g.data(), gc.data(), g.size(), 0);
	aim_cuda_scatter_rows(sc.data(), g.data(), rows.data(), M, D);
	compare("scatter_rows", sc.data(), s2.data(), sc.size(), 0);
}

static void test_adamw(void)
{
	const long n = 777;
	auto w = rnd(n), g = rnd(n), wc = w;
	std::vector<float> m(n), v(n), mc(n), vc(n);
	for (long step = 1; step <= 3; step++) {
		int decay = step != 2;
		aim_cuda_adamw(w.data(), m.data(), v.data(), g.data(), n, 1e-3, 0.9, 0.95, 1e-8, 0.05,
			       decay, step);
		aim_adamw_tensor(wc.data(), mc.data(), vc.data(), g.data(), n, 1e-3, 0.9, 0.95, 1e-8,
				 0.05, decay, step);
	}
	compare("adamw w", w.data(), wc.data(), n, 1e-6);
	compare("adamw m", m.data(), mc.data(), n, 1e-6);
	compare("adamw v", v.data(), vc.data(), n, 1e-6);
	float s = (float)aim_cuda_sumsq(g.data(), n), sc = (float)aim_sumsq(g.data(), n);
	compare("sumsq", &s, &sc, 1, 1e-7);
}

/* The kernels as a backend table (host memory under another name), driven
 * by model.c: a 2-block model's training forward and backward against
 * the CPU backend. */
static void *emu_alloc(size_t n) { return calloc(n ? n : 1, 1); }
static void emu_free(void *p) { free(p); }
static void emu_copy(void *d, const void *s, size_t n) { memcpy(d, s, n); }
static void emu_zero(void *p, size_t n) { memset(p, 0, n); }
static void emu_sync(void) {}
static aim_backend emu_table_fill(void)
{
	aim_backend t = {};
	t.abi = AIM_BACKEND_ABI;
	t.name = "cuda-emulated";
	t.alloc = emu_alloc;
	t.free = emu_free;
	t.upload = t.download = t.copy = emu_copy;
	t.zero = emu_zero;
	t.synchronize = emu_sync;
	/* the library's own filling of the op fields (table_ops.cu) */
	aim_cuda_fill_ops(&t);
	/* backend_cuda.cu fills these from its device state */
	t.set_precision = [](const char *) { return 0; };
	t.describe = [] { return "emulated"; };
	/* group_nccl.cu fills these (pinned memory, NCCL): no device here */
	t.host_alloc = emu_alloc;
	t.host_free = emu_free;
	t.group_id = [](void *, size_t) { return -1; };
	t.group_join = [](const void *, size_t, int, int) { return -1; };
	t.group_allreduce = t.group_reduce = t.group_bcast = [](float *, long) { return -1; };
	t.group_error = [] { return "emulated: no NCCL group"; };
	return t;
}
static const aim_backend emu_table = emu_table_fill();

/* Every field after the header is a function; only the documented
 * optional ones (parallel_groups, max_threads) may be NULL. A field that
 * backend.h appends and table_ops.cu does not fill shows up here. */
static void test_table_complete(void)
{
	typedef void (*fn)(void);
	const size_t first = offsetof(aim_backend, alloc);
	const size_t nfields = (sizeof(aim_backend) - first) / sizeof(fn);
	for (size_t i = 0; i < nfields; i++) {
		const size_t off = first + i * sizeof(fn);
		if (off == offsetof(aim_backend, parallel_groups) ||
		    off == offsetof(aim_backend, max_threads))
			continue;
		fn f;
		memcpy(&f, (const char *)&emu_table + off, sizeof f);
		checks++;
		if (!f) {
			failures++;
			fprintf(stderr, "FAIL table: field %zu (offset %zu) of the CUDA table is NULL\n",
				i, off);
		}
	}
	if (emu_table.abi != aim_backend_cpu()->abi) {
		failures++;
		fprintf(stderr, "FAIL table: ABI %d, the CPU table's is %d\n", emu_table.abi,
			aim_backend_cpu()->abi);
	}
}

/* The ABI-2 fields through both tables, as train_step.c calls them. */
static void test_table_training(void)
{
	const aim_backend *cpu = aim_backend_cpu(), *gpu = &emu_table;
	const int B = 2, K = 16, P = 27, D = 8;
	const int prefix[B] = {3, 11};
	const long np = (long)B * K;
	auto x = rnd((size_t)np * P, 3);
	std::vector<float> t(x.size()), tc(x.size());
	gpu->pixloss_targets(t.data(), x.data(), np, P, 1, NULL);
	cpu->pixloss_targets(tc.data(), x.data(), np, P, 1, NULL);
	compare("table pixloss_targets", t.data(), tc.data(), t.size(), 1e-6);
	std::vector<int> rows(np);
	const long M = aim_pixloss_rows(prefix, B, K, rows.data());
	const double denom = (double)aim_pixloss_count(prefix, B, K);
	auto pred = rnd((size_t)M * P);
	float l = (float)gpu->pixloss_forward(pred.data(), t.data(), rows.data(), M, P, denom);
	float lc = (float)cpu->pixloss_forward(pred.data(), tc.data(), rows.data(), M, P, denom);
	compare("table pixloss_forward", &l, &lc, 1, 1e-6);
	std::vector<float> d(pred.size()), dc(pred.size());
	gpu->pixloss_backward(pred.data(), t.data(), rows.data(), M, P, denom, d.data());
	cpu->pixloss_backward(pred.data(), tc.data(), rows.data(), M, P, denom, dc.data());
	compare("table pixloss_backward", d.data(), dc.data(), d.size(), 1e-6);
	auto src = rnd((size_t)np * D);
	std::vector<float> g((size_t)M * D), gc(g.size()), s(src.size()), sc(src.size());
	gpu->gather_rows(g.data(), src.data(), rows.data(), M, D);
	cpu->gather_rows(gc.data(), src.data(), rows.data(), M, D);
	compare("table gather_rows", g.data(), gc.data(), g.size(), 0);
	gpu->scatter_rows(s.data(), g.data(), rows.data(), M, D);
	cpu->scatter_rows(sc.data(), gc.data(), rows.data(), M, D);
	compare("table scatter_rows", s.data(), sc.data(), s.size(), 0);
	const long n = 300;
	auto w = rnd(n), gr = rnd(n), wc = w;
	std::vector<float> m(n), v(n), mc(n), vc(n);
	for (long step = 1; step <= 2; step++) {
		gpu->adamw(w.data(), m.data(), v.data(), gr.data(), n, 3e-4, 0.9, 0.95, 1e-8, 0.1,
			   1, step);
		cpu->adamw(wc.data(), mc.data(), vc.data(), gr.data(), n, 3e-4, 0.9, 0.95, 1e-8, 0.1,
			   1, step);
	}
	compare("table adamw", w.data(), wc.data(), n, 1e-6);
	float ss = (float)gpu->sumsq(gr.data(), n), ssc = (float)cpu->sumsq(gr.data(), n);
	compare("table sumsq", &ss, &ssc, 1, 1e-7);
}

static void test_model(int v2)
{
	aim_config c;
	memset(&c, 0, sizeof c);
	if (v2) { /* RMSNorm, SwiGLU, a learned position table, qkv bias */
		c.norm = AIM_NORM_RMS;
		c.mlp = AIM_MLP_SWIGLU;
		c.pos = AIM_POS_LEARNED;
		c.qkv_bias = 1;
	}
	c.grid_rows = c.grid_cols = 3;
	c.patch = 2;
	c.channels = 3;
	c.dim = 64;
	c.depth = 2;
	c.heads = 2;
	c.mlp_hidden = 128;
	c.proj_bias = c.mlp_bias = 1;
	aim_model *mc = NULL, *me = NULL;
	if (aim_model_create(&mc, &c, aim_backend_cpu()) || aim_model_init_params(mc, 3) ||
	    aim_model_create(&me, &c, &emu_table) || aim_model_alloc_params(me)) {
		fprintf(stderr, "FAIL model setup: %s\n", aim_errmsg());
		failures++;
		return;
	}
	for (int i = 0; i < mc->nparams; i++)
		if (mc->info[i].ndim == 1)
			for (size_t j = 0; j < mc->info[i].numel; j++)
				mc->arena[mc->info[i].offset + j] += 0.1f * urand();
	memcpy(me->arena, mc->arena, mc->arena_floats * sizeof(float));
	const int B = 2, K = 9, P = 12, D = c.dim;
	int prefix[2] = {2, 7};
	auto patches = rnd((size_t)B * K * P);
	aim_forward_opts o = {};
	o.mask = AIM_MASK_PREFIX;
	o.prefix = prefix;
	o.train = 1;
	o.post_norm = 1;
	if (aim_model_alloc_grads(mc) || aim_model_alloc_grads(me) ||
	    aim_model_forward(mc, patches.data(), B, 3, 3, &o) ||
	    aim_model_forward(me, patches.data(), B, 3, 3, &o)) {
		fprintf(stderr, "FAIL model forward: %s\n", aim_errmsg());
		failures++;
		return;
	}
	const size_t n = (size_t)B * K * D;
	compare("model normed output", aim_model_normed(me), aim_model_normed(mc), n, 1e-5);
	auto dy = rnd(n);
	if (aim_model_backward(mc, dy.data(), 1) || aim_model_backward(me, dy.data(), 1)) {
		fprintf(stderr, "FAIL model backward: %s\n", aim_errmsg());
		failures++;
	} else {
		for (int i = 0; i < mc->nparams; i++) {
			char what[120];
			snprintf(what, sizeof what, "model grad %s", mc->info[i].name);
			compare(what, me->grad_arena + mc->info[i].offset,
				mc->grad_arena + mc->info[i].offset, mc->info[i].numel, 2e-5);
		}
	}
	aim_model_free(mc);
	aim_model_free(me);
}

/* ---- the training step on a "device" that the host cannot read ----------
 * The emulated table once more, its memory in a pool that is readable only
 * while one of the table's functions runs (mprotect): any host access to
 * backend memory from train_step.c or model.c — a missing upload or
 * download — is a segmentation fault here, as it would be an illegal
 * access on the GPU. */
static char *pool;
static size_t pool_used;
static const size_t pool_size = (size_t)256 << 20;
static int pool_depth;
static void pool_protect(int prot)
{
	/* only the pages handed out so far (the rest stay inaccessible) */
	const size_t used = (pool_used + 4095) & ~(size_t)4095;
	if (used && mprotect(pool, used, prot)) {
		perror("mprotect");
		abort();
	}
}
struct pool_open {
	pool_open() { if (pool_depth++ == 0) pool_protect(PROT_READ | PROT_WRITE); }
	~pool_open() { if (--pool_depth == 0) pool_protect(PROT_NONE); }
};
static void *pool_alloc(size_t n)
{
	size_t at = (pool_used + 255) & ~(size_t)255;
	if (at + n > pool_size)
		return NULL;
	pool_used = at + (n ? n : 1);
	return pool + at; /* fresh pages: zero */
}
static void pool_free(void *) {}
static bool in_pool(const void *p) { return (const char *)p >= pool && (const char *)p < pool + pool_size; }
static void pool_upload(void *d, const void *s, size_t n)
{
	if (!in_pool(d) || in_pool(s)) {
		fprintf(stderr, "FAIL upload: destination not device memory or source not host\n");
		abort();
	}
	memcpy(d, s, n);
}
static void pool_download(void *d, const void *s, size_t n)
{
	if (in_pool(d) || !in_pool(s)) {
		fprintf(stderr, "FAIL download: source not device memory or destination not host\n");
		abort();
	}
	memcpy(d, s, n);
}

static aim_backend guarded_inner;
template <auto M> struct guard;
template <typename R, typename... A, R (*aim_backend::*M)(A...)> struct guard<M> {
	static R call(A... a)
	{
		pool_open open;
		return (guarded_inner.*M)(a...);
	}
};

static aim_backend guarded_table(void)
{
	pool = (char *)mmap(NULL, pool_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pool == MAP_FAILED) {
		perror("mmap");
		abort();
	}
	guarded_inner = emu_table;
	guarded_inner.alloc = pool_alloc;
	guarded_inner.free = pool_free;
	guarded_inner.upload = pool_upload;
	guarded_inner.download = pool_download;
	aim_backend g = guarded_inner;
	g.name = "cuda-emulated-guarded";
#define G(f) g.f = guard<&aim_backend::f>::call
	G(upload); G(download); G(copy); G(zero); G(linear_fwd); G(linear_fwd_acc);
	G(linear_bwd); G(patch_embed_fwd); G(patch_embed_bwd); G(layernorm_fwd);
	G(layernorm_bwd); G(gelu_fwd); G(gelu_bwd); G(softmax_fwd); G(softmax_bwd);
	G(attention_fwd); G(attention_bwd); G(add_fwd); G(add_rows); G(axpy); G(scale);
	G(pixloss_targets); G(pixloss_forward); G(pixloss_backward); G(gather_rows);
	G(scatter_rows); G(adamw); G(sumsq); G(rmsnorm_fwd); G(rmsnorm_bwd); G(swiglu_fwd);
	G(swiglu_bwd); G(linear_gelu_fwd);
#undef G
	return g;
}

/* read device memory from the test (which may) */
static std::vector<float> peek(const float *dev, size_t n)
{
	pool_open open;
	return std::vector<float>(dev, dev + n);
}

static void test_trainer(const aim_variant &v)
{
	static const aim_backend gt = guarded_table();
	aim_config c;
	memset(&c, 0, sizeof c);
	c.grid_rows = c.grid_cols = 3;
	c.patch = 2;
	c.channels = 3;
	c.dim = 64;
	c.depth = 1; /* test_model covers depth; this is the step's plumbing */
	c.heads = 2;
	c.mlp_hidden = 128;
	c.proj_bias = c.mlp_bias = 1;
	aim_geometry g;
	memset(&g, 0, sizeof g);
	g.patch = 2;
	g.rows = g.cols = 3;
	g.channels = 3;
	g.K = 9;
	g.P = 12;
	aim_model *mc = NULL, *me = NULL;
	aim_trainer tc, te;
	if (aim_model_create(&mc, &c, aim_backend_cpu()) || aim_model_init_params(mc, 5) ||
	    aim_model_create(&me, &c, aim_backend_cpu()) || aim_model_init_params(me, 5) ||
	    aim_trainer_init_variant(&tc, mc, &v, 1, 32, &g, 1, 11, 2) ||
	    aim_trainer_init_variant(&te, me, &v, 1, 32, &g, 1, 11, 2) ||
	    aim_trainer_set_backend(&te, &gt)) {
		fprintf(stderr, "FAIL trainer setup: %s\n", aim_errmsg());
		failures++;
		return;
	}
	aim_rng r1, r2;
	aim_rng_init(&r1, 11, 3);
	aim_rng_init(&r2, 11, 3);
	aim_pixel_head_init_random(&tc.head, &r1);
	aim_pixel_head_init_random(&te.head, &r2);
	aim_trainer_init_mask_token(&tc);
	aim_trainer_init_mask_token(&te);
	fprintf(stderr, "trainer: order %s, %s attention, %s objective, %s head\n",
		aim_order_name(v.order), aim_attn_name(v.attention), aim_objective_name(v.objective),
		aim_head_name(v.head));
	const int B = 3; /* two micro-batches: 2 + 1 */
	auto x = rnd((size_t)B * g.K * g.P, 2);
	const uint64_t gidx[B] = {4, 9, 17};
	for (long step = 0; step < 2; step++) {
		double lc = 0, le = 0, nc = 0, ne = 0;
		if (aim_trainer_gradients(&tc, x.data(), gidx, B, &lc) ||
		    aim_trainer_gradients(&te, x.data(), gidx, B, &le)) {
			fprintf(stderr, "FAIL trainer gradients: %s\n", aim_errmsg());
			failures++;
			break;
		}
		float flc = (float)lc, fle = (float)le;
		compare("trainer loss", &fle, &flc, 1, 1e-5);
		auto gt_ = peek(te.dev->grad_arena, mc->arena_floats);
		compare("trainer trunk gradients", gt_.data(), mc->grad_arena, mc->arena_floats, 1e-4);
		auto gh = peek(te.dhead_grads, (size_t)tc.head.nparams);
		compare("trainer head gradients", gh.data(), tc.head.grads, gh.size(), 1e-4);
		if (tc.mtok_g) {
			auto gm = peek(te.dmtok_g, (size_t)c.dim);
			compare("trainer mask-token gradient", gm.data(), tc.mtok_g, gm.size(), 1e-4);
		}
		/* clip hard (the scale runs) with a small rate (AdamW's sign-like
		 * steps of near-zero gradients stay below the tolerance) */
		aim_trainer_update(&tc, 1e-5, 0.01, step, &nc);
		aim_trainer_update(&te, 1e-5, 0.01, step, &ne);
		float fnc = (float)nc, fne = (float)ne;
		compare("trainer gradient norm", &fne, &fnc, 1, 1e-5);
	}
	aim_trainer_sync_host(&te);
	compare("trainer trunk after 2 updates", me->arena, mc->arena, mc->arena_floats, 1e-4);
	compare("trainer head after 2 updates", te.head.params, tc.head.params,
		(size_t)tc.head.nparams, 1e-4);
	compare("trainer first moments", te.optim.m, tc.optim.m, (size_t)tc.optim.total, 1e-4);
	compare("trainer second moments", te.optim.v, tc.optim.v, (size_t)tc.optim.total, 1e-4);
	double vc = 0, ve = 0;
	if (aim_trainer_eval(&tc, x.data(), B, &vc) || aim_trainer_eval(&te, x.data(), B, &ve)) {
		fprintf(stderr, "FAIL trainer eval: %s\n", aim_errmsg());
		failures++;
	} else {
		float a = (float)ve, b = (float)vc;
		compare("trainer eval loss", &a, &b, 1, 1e-5);
	}
	std::vector<float> pc((size_t)B * g.K * g.P), pe(pc.size());
	std::vector<unsigned char> given((size_t)B * g.K);
	if (aim_trainer_predict(&tc, x.data(), B, 4, pc.data(), given.data()) ||
	    aim_trainer_predict(&te, x.data(), B, 4, pe.data(), given.data())) {
		fprintf(stderr, "FAIL trainer predict: %s\n", aim_errmsg());
		failures++;
	} else {
		compare("trainer predictions", pe.data(), pc.data(), pc.size(), 1e-4);
	}
	aim_trainer_free(&tc);
	aim_trainer_free(&te);
	aim_model_free(mc);
	aim_model_free(me);
}

/* In bf16 mode the layers narrower than AIM_BF16_MIN_WIDTH in or out stay
 * fp32 (ops.h), as on the CPU; the wide ones round. */
static void test_linear_bf16_widths(void)
{
	g_compute = CUBLAS_COMPUTE_32F_FAST_16BF;
	const int shapes[][2] = {{64, 8}, {8, 64}, {64, 32}, {64, 64}};
	for (const auto &sh : shapes) {
		int M = 30, in = sh[0], out = sh[1];
		auto x = rnd((size_t)M * in), w = rnd((size_t)out * in, 0.5f);
		std::vector<float> y((size_t)M * out), yc((size_t)M * out);
		cuda_linear_fwd(y.data(), x.data(), w.data(), NULL, M, in, out);
		aim_linear_fwd(yc.data(), x.data(), w.data(), NULL, M, in, out);
		double worst = 0;
		for (size_t i = 0; i < y.size(); i++)
			worst = fmax(worst, fabs((double)y[i] - yc[i]));
		char what[64];
		snprintf(what, sizeof what, "bf16 linear_fwd in %d out %d", in, out);
		if (aim_bf16_narrow(in, out))
			compare(what, y.data(), yc.data(), y.size(), 1e-6);
		else {
			checks++;
			if (!(worst > 1e-4)) {
				failures++;
				fprintf(stderr, "FAIL %s: not rounded to bf16 (%g from fp32)\n", what, worst);
			}
		}
	}
	g_compute = CUBLAS_COMPUTE_32F;
}

int main(void)
{
	test_elementwise();
	test_linear(5, 7, 3);
	test_linear(300, 16, 40); /* the bias sum's ones[] grows */
	test_linear(2, 9, 11);
	test_linear_bf16_widths();
	test_softmax(7, 5);
	test_softmax(5, 100);
	test_layernorm(3, 8);
	test_layernorm(100, 70);
	test_rmsnorm(3, 8);
	test_rmsnorm(100, 70);
	test_rmsnorm(9000, 8); /* more row chunks than the limit */
	test_pixloss();
	test_adamw();
	const int prefix[3] = {3, 50, 200}; /* inside, past a tile, past K */
	const aim_mask_kind masks[3] = {AIM_MASK_NONE, AIM_MASK_CAUSAL, AIM_MASK_PREFIX};
	for (int mi = 0; mi < 3; mi++) {
		test_attention(2, 70, 2, 16, masks[mi], prefix);  /* tiles, hd padded to 32 */
		test_attention(1, 33, 1, 64, masks[mi], prefix);
		test_attention(3, 5, 1, 72, masks[mi], prefix);   /* padded to 128, one tile */
		test_attention(1, 9, 2, 160, masks[mi], prefix);  /* warp-per-row path */
	}
	test_attention(2, 70, 2, 16, AIM_MASK_PREFIX, NULL); /* no lengths: causal */
	test_attention(1, 1, 1, 64, AIM_MASK_CAUSAL, NULL);
	test_attention(1, 100, 1, 128, AIM_MASK_PREFIX, prefix + 1); /* 2 and 4 tiles */
	test_table_complete();
	test_table_training();
	test_model(0);
	test_model(1);
	/* the recipe, and the ablation variants through the device path */
	aim_variant v = aim_variant_default();
	test_trainer(v);
	v.order = AIM_ORDER_SPIRAL;
	v.head = AIM_HEAD_TRANSFORMER;
	test_trainer(v);
	v.order = AIM_ORDER_RANDOM;
	v.attention = AIM_ATTN_CAUSAL;
	v.head = AIM_HEAD_NONE;
	test_trainer(v);
	v = aim_variant_default();
	v.objective = AIM_OBJ_MASKED;
	v.mask_ratio = 0.5;
	v.head = AIM_HEAD_TRANSFORMER;
	test_trainer(v);
	fprintf(stderr, "emu_ops: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
