/* The model's operations on the CPU: one small file per op (ops_*.c), the
 * forward and the backward of each side by side.
 *
 * Conventions shared by every op:
 *  - Tensors are float, row-major, contiguous unless a stride is given.
 *  - Linear weights are stored as PyTorch stores them, [out, in]; a conv
 *    patch kernel [D, C, p, p] is the same matrix [D, C·p·p].
 *  - Backward functions ACCUMULATE (+=) into every gradient they write, the
 *    inputs' gradients included, so residual branches need no extra adds;
 *    the caller zeroes gradients before a step. A NULL gradient pointer
 *    means "not wanted".
 *  - Big products go through OpenBLAS (cblas_sgemm); the other loops are
 *    OpenMP-parallel. aim_apply_threads() (cli.h) sets both thread counts.
 *
 * For every backend: pointers are backend memory, except `prefix` of the
 * attention, which is host memory.
 *
 * The model reaches these functions only through the backend table
 * (backend.h), so a GPU implementation can replace them one by one. */
#ifndef AIM_OPS_H
#define AIM_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Which keys a query may attend to. */
typedef enum {
	AIM_MASK_NONE = 0,   /* bidirectional: every key (inference) */
	AIM_MASK_CAUSAL,     /* key j visible to query i when j <= i */
	AIM_MASK_PREFIX,     /* prefix-causal: j <= i or j < prefix[b] */
} aim_mask_kind;

/* In bf16 mode (--precision bf16, on every backend) a linear product whose
 * input or output width is below AIM_BF16_MIN_WIDTH (a LoRA factor of rank
 * r, an adapter's bottleneck) stays fp32: its arithmetic is a small part of
 * the layer it adapts, so bf16 buys nothing there and would only round the
 * same activations once more (the frozen layer's product has rounded x
 * already; on the CPU that extra rounding was a fifth of a LoRA step) into
 * a product too narrow for the bf16 kernels. */
#define AIM_BF16_MIN_WIDTH 33
static inline int aim_bf16_narrow(int in, int out)
{
	return in < AIM_BF16_MIN_WIDTH || out < AIM_BF16_MIN_WIDTH;
}

/* y[M,out] = x[M,in] · w[out,in]ᵀ (+ b[out] when b is not NULL). */
void aim_linear_fwd(float *y, const float *x, const float *w, const float *b,
		    int M, int in, int out);
/* y[M,out] += x · wᵀ (+ b): the residual add fused into the GEMM (beta 1). */
void aim_linear_fwd_acc(float *y, const float *x, const float *w, const float *b,
			int M, int in, int out);
/* y[M,out] = GELU(x · wᵀ (+ b)): an MLP's first layer when its
 * pre-activation is not kept (inference). Here the two ops one after the
 * other; the CPU's bf16 mode applies the GELU inside the GEMM (one pass
 * over y fewer). */
void aim_linear_gelu_fwd(float *y, const float *x, const float *w, const float *b,
			 int M, int in, int out);
/* dx += dy·w ; dw += dyᵀ·x ; db += Σ_rows dy. */
void aim_linear_bwd(float *dx, float *dw, float *db, const float *dy,
		    const float *x, const float *w, int M, int in, int out);

/* Patch embedding: the stride-p convolution over non-overlapping patches is
 * a GEMM over patch vectors. patches [M, P] (P = C·p·p, ordered channel,
 * row, column), w [D, P], b [D] -> y [M, D]. */
void aim_patch_embed_fwd(float *y, const float *patches, const float *w, const float *b,
			 int M, int P, int D);
void aim_patch_embed_bwd(float *dw, float *db, const float *dy, const float *patches,
			 int M, int P, int D);

/* LayerNorm over the last dimension D of M rows: y = (x−μ)/√(σ²+eps)·w + b.
 * mean and rstd ([M], may be NULL) keep the statistics for the backward.
 * y may alias x. */
void aim_layernorm_fwd(float *y, float *mean, float *rstd, const float *x,
		       const float *w, const float *b, int M, int D, float eps);
/* x must be the forward input (not aliased by y in training). */
void aim_layernorm_bwd(float *dx, float *dw, float *db, const float *dy,
		       const float *x, const float *w, const float *mean,
		       const float *rstd, int M, int D);

/* RMSNorm over the last dimension D of M rows: y = x/√(mean(x²)+eps)·w
 * (weight only, as torch.nn.RMSNorm). rstd ([M], may be NULL) keeps
 * 1/√(mean(x²)+eps) for the backward. y may alias x. */
void aim_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int M, int D,
		     float eps);
/* dx += ∂/∂x, dw += ∂/∂w (either may be NULL); x is the forward input. */
void aim_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
		     const float *rstd, int M, int D);

/* Exact GELU, x·Φ(x) = ½x(1 + erf(x/√2)). y may alias x. */
void aim_gelu_fwd(float *y, const float *x, size_t n);
/* dx += dy · GELU'(x) */
void aim_gelu_bwd(float *dx, const float *dy, const float *x, size_t n);

/* The SwiGLU gate: y = silu(a) · b = a·sigmoid(a)·b, element-wise (y may
 * alias a or b). */
void aim_swiglu_fwd(float *y, const float *a, const float *b, size_t n);
/* da += dy · b · silu'(a) ; db += dy · silu(a). */
void aim_swiglu_bwd(float *da, float *db, const float *dy, const float *a, const float *b,
		    size_t n);

/* Row softmax over the last dimension N of M rows; y may alias x. */
void aim_softmax_fwd(float *y, const float *x, int M, int N);
/* dx += y ⊙ (dy − Σ dy⊙y) */
void aim_softmax_bwd(float *dx, const float *dy, const float *y, int M, int N);

/* Multi-head scaled dot-product attention (scale 1/√hd).
 * qkv [B, K, 3, H, hd] (the output of the qkv Linear, as the published code
 * reshapes it); out [B, K, H·hd] (heads concatenated per token).
 * lse [B, H, K] (may be NULL) keeps each row's log-sum-exp for the backward.
 * prefix [B] is read for AIM_MASK_PREFIX only. Never materialises the
 * B×H×K×K scores: one row of K scores per thread at a time. */
void aim_attention_fwd(float *out, float *lse, const float *qkv, int B, int K,
		       int H, int hd, aim_mask_kind mask, const int *prefix);
/* dqkv += gradient of out wrt qkv, given out and lse from the forward. */
void aim_attention_bwd(float *dqkv, const float *dout, const float *qkv,
		       const float *out, const float *lse, int B, int K, int H,
		       int hd, aim_mask_kind mask, const int *prefix);

/* y[i] = a[i] + b[i] (y may alias a or b). */
void aim_add_fwd(float *y, const float *a, const float *b, size_t n);
/* y[B, N] += t[N] broadcast over B rows (position table onto tokens). */
void aim_add_rows(float *y, const float *t, int B, size_t N);
/* y[i] += s · x[i] */
void aim_axpy(float *y, float s, const float *x, size_t n);
/* y[i] = s · x[i] (y may alias x) */
void aim_scale(float *y, float s, const float *x, size_t n);
/* y[b, :] = a[b, :] + s[b]·x[b, :] over B rows of N (a NULL: 0); y may
 * alias a or x. Stochastic depth: a residual add of a branch kept or
 * dropped per sample, and the branch's gradient. */
void aim_add_scaled_rows(float *y, const float *a, const float *s, const float *x, int B,
			 size_t N);

/* The fixed 2-D sin-cos position table for a rows × cols grid, [rows·cols, D]
 * in raster order, exactly as the published AIM code builds it: the first
 * D/2 columns encode the patch's column index, the last D/2 its row index,
 * each as [sin(pos·ω), cos(pos·ω)] with ω_i = 10000^(−i/(D/4)),
 * i < D/4. D must be a multiple of 4. Returns -1 if it is not. */
int aim_sincos_pos_2d(float *table, int rows, int cols, int D);

#endif
