/* The CPU backend: ops.h functions on host memory; the one place that
 * picks, per product, fp32 (whose library gemm.h fixes per process) or
 * the bf16 products of ops_bf16.h (--precision bf16). */
#include <malloc.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "blas_threads.h"
#include "dnnl_gemm.h"
#include "gemm.h"
#include "ops_bf16.h"
#include "train_loss.h"
#include "train_optim.h"

static void *cpu_alloc(size_t bytes)
{
	/* 64-byte aligned and zeroed: GEMM panels and vector loops like it. */
	size_t n = (bytes + 63) & ~(size_t)63;
	void *p = aligned_alloc(64, n ? n : 64);
	if (p)
		memset(p, 0, n);
	return p;
}

/* Writing or freeing memory that holds weights retires their bf16 copies
 * (ops_bf16.h). */
static void cpu_free(void *p)
{
	if (p)
		aim_bf16_forget(p, malloc_usable_size(p));
	free(p);
}
static void cpu_copy(void *dst, const void *src, size_t n)
{
	aim_bf16_stale(dst, n);
	memcpy(dst, src, n);
}
static void cpu_zero(void *p, size_t n)
{
	aim_bf16_stale(p, n);
	memset(p, 0, n);
}
static void cpu_download(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
static void cpu_sync(void) {}

static void cpu_parallel_groups(void (*fn)(void *ctx, int g), void *ctx, int ngroups)
{
	int held = aim_blas_hold_single();
	#pragma omp parallel for schedule(dynamic)
	for (int g = 0; g < ngroups; g++)
		fn(ctx, g);
	aim_blas_release(held);
}

static int cpu_max_threads(void) { return omp_get_max_threads(); }

/* ---- the matrix products ------------------------------------------------ */

static int g_bf16; /* --precision bf16 */

static int cpu_set_precision(const char *name)
{
	if (!strcmp(name, "fp32")) {
		g_bf16 = 0;
		return 0;
	}
	if (!strcmp(name, "bf16") && !aim_bf16_unavailable()) {
		g_bf16 = 1;
		return 0;
	}
	return -1;
}

static void cpu_linear_fwd(float *y, const float *x, const float *w, const float *b, int M,
			   int in, int out)
{
	if (g_bf16)
		aim_linear_fwd_bf16(y, x, w, b, M, in, out);
	else
		aim_linear_fwd(y, x, w, b, M, in, out);
}

static void cpu_linear_fwd_acc(float *y, const float *x, const float *w, const float *b, int M,
			       int in, int out)
{
	if (g_bf16)
		aim_linear_fwd_acc_bf16(y, x, w, b, M, in, out);
	else
		aim_linear_fwd_acc(y, x, w, b, M, in, out);
}

static void cpu_linear_gelu_fwd(float *y, const float *x, const float *w, const float *b, int M,
				int in, int out)
{
	if (g_bf16)
		aim_linear_gelu_fwd_bf16(y, x, w, b, M, in, out);
	else
		aim_linear_gelu_fwd(y, x, w, b, M, in, out);
}

static void cpu_linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
			   const float *w, int M, int in, int out)
{
	if (g_bf16)
		aim_linear_bwd_bf16(dx, dw, db, dy, x, w, M, in, out);
	else
		aim_linear_bwd(dx, dw, db, dy, x, w, M, in, out);
}

static void cpu_attention_fwd(float *out, float *lse, const float *qkv, int B, int K, int H,
			      int hd, aim_mask_kind mask, const int *prefix)
{
	if (g_bf16)
		aim_attention_fwd_bf16(out, lse, qkv, B, K, H, hd, mask, prefix);
	else
		aim_attention_fwd(out, lse, qkv, B, K, H, hd, mask, prefix);
}

static void cpu_attention_bwd(float *dqkv, const float *dout, const float *qkv, const float *out,
			      const float *lse, int B, int K, int H, int hd, aim_mask_kind mask,
			      const int *prefix)
{
	if (g_bf16)
		aim_attention_bwd_bf16(dqkv, dout, qkv, out, lse, B, K, H, hd, mask, prefix);
	else
		aim_attention_bwd(dqkv, dout, qkv, out, lse, B, K, H, hd, mask, prefix);
}

static void cpu_patch_embed_fwd(float *y, const float *patches, const float *w, const float *b,
				int M, int P, int D)
{
	if (g_bf16)
		aim_patch_embed_fwd_bf16(y, patches, w, b, M, P, D);
	else
		aim_patch_embed_fwd(y, patches, w, b, M, P, D);
}

static void cpu_patch_embed_bwd(float *dw, float *db, const float *dy, const float *patches,
				int M, int P, int D)
{
	if (g_bf16)
		aim_patch_embed_bwd_bf16(dw, db, dy, patches, M, P, D);
	else
		aim_patch_embed_bwd(dw, db, dy, patches, M, P, D);
}

char *openblas_get_config(void);

static const char *cpu_describe(void)
{
	static char line[384], dnnl[128] = "no oneDNN";
	if (aim_dnnl_available())
		snprintf(dnnl, sizeof dnnl, "%s (ISA %s)", aim_dnnl_version(), aim_dnnl_isa());
	if (g_bf16)
		snprintf(line, sizeof line, "CPU: %d threads, %s, %s, GEMM precision bf16 (%s)",
			 omp_get_max_threads(), openblas_get_config(), dnnl,
			 aim_dnnl_bf16_kernel() ? aim_dnnl_bf16_kernel() : "?");
	else
		snprintf(line, sizeof line, "CPU: %d threads, %s, %s, GEMM precision fp32 (%s)",
			 omp_get_max_threads(), openblas_get_config(), dnnl, aim_sgemm_library_name());
	return line;
}

static void cpu_gather_rows(float *dst, const float *src, const int *rows, long M, int D)
{
	#pragma omp parallel for schedule(static) if (M * D > 65536)
	for (long i = 0; i < M; i++)
		memcpy(dst + (size_t)i * D, src + (size_t)rows[i] * D, sizeof(float) * D);
}

static void cpu_scatter_rows(float *dst, const float *src, const int *rows, long M, int D)
{
	#pragma omp parallel for schedule(static) if (M * D > 65536)
	for (long i = 0; i < M; i++)
		memcpy(dst + (size_t)rows[i] * D, src + (size_t)i * D, sizeof(float) * D);
}

static const aim_backend cpu = {
	.abi = AIM_BACKEND_ABI,
	.name = "cpu",
	.host_memory = 1,
	.alloc = cpu_alloc,
	.free = cpu_free,
	.upload = cpu_copy,
	.download = cpu_download,
	.copy = cpu_copy,
	.zero = cpu_zero,
	.synchronize = cpu_sync,
	.linear_fwd = cpu_linear_fwd,
	.linear_fwd_acc = cpu_linear_fwd_acc,
	.linear_bwd = cpu_linear_bwd,
	.patch_embed_fwd = cpu_patch_embed_fwd,
	.patch_embed_bwd = cpu_patch_embed_bwd,
	.layernorm_fwd = aim_layernorm_fwd,
	.layernorm_bwd = aim_layernorm_bwd,
	.gelu_fwd = aim_gelu_fwd,
	.gelu_bwd = aim_gelu_bwd,
	.softmax_fwd = aim_softmax_fwd,
	.softmax_bwd = aim_softmax_bwd,
	.attention_fwd = cpu_attention_fwd,
	.attention_bwd = cpu_attention_bwd,
	.add_fwd = aim_add_fwd,
	.add_rows = aim_add_rows,
	.axpy = aim_axpy,
	.scale = aim_scale,
	.parallel_groups = cpu_parallel_groups,
	.max_threads = cpu_max_threads,
	.set_precision = cpu_set_precision,
	.describe = cpu_describe,
	.pixloss_targets = aim_pixloss_targets,
	.pixloss_forward = aim_pixloss_forward,
	.pixloss_backward = aim_pixloss_backward,
	.gather_rows = cpu_gather_rows,
	.scatter_rows = cpu_scatter_rows,
	.adamw = aim_adamw_tensor,
	.sumsq = aim_sumsq,
	.rmsnorm_fwd = aim_rmsnorm_fwd,
	.rmsnorm_bwd = aim_rmsnorm_bwd,
	.swiglu_fwd = aim_swiglu_fwd,
	.swiglu_bwd = aim_swiglu_bwd,
	.linear_gelu_fwd = cpu_linear_gelu_fwd,
	.add_scaled_rows = aim_add_scaled_rows,
};

const aim_backend *aim_backend_cpu(void) { return &cpu; }
