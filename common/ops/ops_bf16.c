/* bf16 linear layers and patch embedding on the CPU (ops_bf16.h): operands
 * rounded to bf16, one oneDNN matmul per product, fp32 out. */
#include "ops_bf16.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl_gemm.h"
#include "ops.h"
#include "ops_math.h"

const char *aim_bf16_unavailable(void)
{
	static char why[256];
	if (!aim_dnnl_available())
		return "this build has no oneDNN (install libdnnl-dev and rebuild)";
	if (!aim_dnnl_native_bf16()) {
		snprintf(why, sizeof why,
			 "oneDNN would only emulate bf16 on this CPU (ISA %s; native bf16 needs "
			 "AVX512_BF16 or AMX), slower than fp32",
			 aim_dnnl_isa());
		return why;
	}
	return NULL;
}

AIM_VECTOR_CLONES
static void convert_range(uint16_t *dst, const float *src, size_t n)
{
	/* aim_bf16_from_f32 without its early return, so the loop vectorises
	 * (the scalar loop was a quarter of a LoRA step's time): the same
	 * bits, NaN made quiet, everything else rounded to nearest even. */
	#pragma omp simd
	for (size_t i = 0; i < n; i++) {
		uint32_t x;
		memcpy(&x, &src[i], sizeof x);
		uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
		uint32_t quiet = (x >> 16) | 0x40u;
		dst[i] = (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
	}
}

void aim_bf16_convert(uint16_t *dst, const float *src, size_t n)
{
	const size_t chunk = 1 << 16;
	if (n <= chunk) {
		convert_range(dst, src, n);
		return;
	}
	long nchunks = (long)((n + chunk - 1) / chunk);
	#pragma omp parallel for schedule(static)
	for (long c = 0; c < nchunks; c++) {
		size_t a = (size_t)c * chunk, len = n - a < chunk ? n - a : chunk;
		convert_range(dst + a, src + a, len);
	}
}

/* ---- the weights' bf16 copies ------------------------------------------ */

typedef struct {
	const float *w;
	size_t n;
	uint16_t *bf;
	int stale;
} weight_copy;

static pthread_mutex_t g_wlock = PTHREAD_MUTEX_INITIALIZER;
static weight_copy *g_copies;
static int g_ncopies, g_capcopies;

#define NSAMPLES 16

/* A few elements spread over the tensor still match the copy. */
static int samples_match(const weight_copy *c)
{
	int k = c->n < NSAMPLES ? (int)c->n : NSAMPLES;
	for (int i = 0; i < k; i++) {
		size_t j = k > 1 ? (c->n - 1) * (size_t)i / (size_t)(k - 1) : 0;
		if (aim_bf16_from_f32(c->w[j]) != c->bf[j])
			return 0;
	}
	return 1;
}

static const uint16_t *weight_bf16(const float *w, size_t n)
{
	pthread_mutex_lock(&g_wlock);
	weight_copy *c = NULL;
	for (int i = 0; i < g_ncopies; i++)
		if (g_copies[i].w == w) {
			c = &g_copies[i];
			break;
		}
	if (c && c->n != n) {
		free(c->bf);
		c->bf = NULL;
	}
	if (!c) {
		if (g_ncopies == g_capcopies) {
			int cap = g_capcopies ? 2 * g_capcopies : 64;
			weight_copy *a = realloc(g_copies, cap * sizeof *a);
			if (!a)
				goto oom;
			g_copies = a;
			g_capcopies = cap;
		}
		c = &g_copies[g_ncopies++];
		*c = (weight_copy){w, n, NULL, 1};
	}
	if (!c->bf) {
		c->n = n;
		c->bf = aligned_alloc(64, (n * sizeof(uint16_t) + 63) & ~(size_t)63);
		if (!c->bf)
			goto oom;
		c->stale = 1;
	}
	if (c->stale || !samples_match(c)) {
		aim_bf16_convert(c->bf, w, n);
		c->stale = 0;
	}
	const uint16_t *bf = c->bf;
	pthread_mutex_unlock(&g_wlock);
	return bf;
oom:
	fprintf(stderr, "aim: out of memory for a bf16 weight copy (%zu elements)\n", n);
	abort();
}

static int overlaps(const weight_copy *c, const char *p, size_t bytes)
{
	const char *a = (const char *)c->w, *b = a + c->n * sizeof(float);
	return a < p + bytes && p < b;
}

void aim_bf16_stale(const void *p, size_t bytes)
{
	pthread_mutex_lock(&g_wlock);
	for (int i = 0; i < g_ncopies; i++)
		if (overlaps(&g_copies[i], p, bytes))
			g_copies[i].stale = 1;
	pthread_mutex_unlock(&g_wlock);
}

void aim_bf16_forget(const void *p, size_t bytes)
{
	pthread_mutex_lock(&g_wlock);
	for (int i = 0; i < g_ncopies;) {
		if (overlaps(&g_copies[i], p, bytes)) {
			free(g_copies[i].bf);
			g_copies[i] = g_copies[--g_ncopies];
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&g_wlock);
}

/* ---- activations: per-thread rounding buffers ------------------------- */

/* Two per thread (a backward rounds dy and x at once), listed globally so
 * they stay reachable until the process ends. */
typedef struct scratch {
	uint16_t *buf[2];
	size_t cap[2];
	struct scratch *next;
} scratch;
static __thread scratch *t_scratch;
static scratch *g_scratch;

static const uint16_t *rounded(int slot, const float *x, size_t n)
{
	scratch *s = t_scratch;
	if (!s) {
		s = calloc(1, sizeof *s);
		if (!s)
			goto oom;
		pthread_mutex_lock(&g_wlock);
		s->next = g_scratch;
		g_scratch = s;
		pthread_mutex_unlock(&g_wlock);
		t_scratch = s;
	}
	if (n > s->cap[slot]) {
		free(s->buf[slot]);
		size_t cap = n + n / 4;
		s->buf[slot] = aligned_alloc(64, (cap * sizeof(uint16_t) + 63) & ~(size_t)63);
		if (!s->buf[slot])
			goto oom;
		s->cap[slot] = cap;
	}
	aim_bf16_convert(s->buf[slot], x, n);
	return s->buf[slot];
oom:
	fprintf(stderr, "aim: out of memory for bf16 activations (%zu elements)\n", n);
	abort();
}

/* ---- the ops ------------------------------------------------------------ */

/* y = x·wᵀ (+ b), then the post operations (dnnl_gemm.h) on the fp32
 * accumulators: the residual add onto y, or the GELU. oneDNN fuses both
 * for free; the GELU there (an eltwise post-op with its own erf) saves,
 * in inference, one pass over the widest activation of the block, which
 * an extraction otherwise writes, reads, writes and reads again. */
static void product_bf16(float *y, const float *x, const float *w, const float *b, int M,
			 int in, int out, int post)
{
	const uint16_t *xb = rounded(0, x, (size_t)M * in);
	const uint16_t *wb = weight_bf16(w, (size_t)out * in);
	aim_dnnl_gemm(AIM_GEMM_BF16, 0, 1, M, out, in, xb, in, wb, in, b, post, y, out);
}

void aim_linear_fwd_bf16(float *y, const float *x, const float *w, const float *b,
			 int M, int in, int out)
{
	if (aim_bf16_narrow(in, out))
		aim_linear_fwd(y, x, w, b, M, in, out);
	else
		product_bf16(y, x, w, b, M, in, out, 0);
}

void aim_linear_fwd_acc_bf16(float *y, const float *x, const float *w, const float *b,
			     int M, int in, int out)
{
	if (aim_bf16_narrow(in, out))
		aim_linear_fwd_acc(y, x, w, b, M, in, out);
	else
		product_bf16(y, x, w, b, M, in, out, AIM_GEMM_ACCUMULATE);
}

void aim_linear_gelu_fwd_bf16(float *y, const float *x, const float *w, const float *b,
			      int M, int in, int out)
{
	if (aim_bf16_narrow(in, out))
		aim_linear_gelu_fwd(y, x, w, b, M, in, out);
	else
		product_bf16(y, x, w, b, M, in, out, AIM_GEMM_GELU);
}

void aim_linear_bwd_bf16(float *dx, float *dw, float *db, const float *dy,
			 const float *x, const float *w, int M, int in, int out)
{
	if ((!dx && !dw) || aim_bf16_narrow(in, out)) {
		aim_linear_bwd(dx, dw, db, dy, x, w, M, in, out);
		return;
	}
	const uint16_t *dyb = rounded(0, dy, (size_t)M * out);
	if (dx) /* dx[M,in] += dy[M,out] · w[out,in] */
		aim_dnnl_gemm(AIM_GEMM_BF16, 0, 0, M, in, out, dyb, out,
			      weight_bf16(w, (size_t)out * in), in, NULL, AIM_GEMM_ACCUMULATE, dx, in);
	if (dw) /* dw[out,in] += dyᵀ · x */
		aim_dnnl_gemm(AIM_GEMM_BF16, 1, 0, out, in, M, dyb, out,
			      rounded(1, x, (size_t)M * in), in, NULL, AIM_GEMM_ACCUMULATE, dw, in);
	if (db) /* the bias gradient is a sum, in fp32 */
		aim_linear_bwd(NULL, NULL, db, dy, x, w, M, in, out);
}

void aim_patch_embed_fwd_bf16(float *y, const float *patches, const float *w,
			      const float *b, int M, int P, int D)
{
	aim_linear_fwd_bf16(y, patches, w, b, M, P, D);
}

void aim_patch_embed_bwd_bf16(float *dw, float *db, const float *dy, const float *patches,
			      int M, int P, int D)
{
	aim_linear_bwd_bf16(NULL, dw, db, dy, patches, NULL, M, P, D);
}
