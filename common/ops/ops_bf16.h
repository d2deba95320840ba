/* The CPU's bf16 matrix products (--precision bf16 --device cpu), through
 * oneDNN (dnnl_gemm.h).
 *
 * Semantics, the same as the CUDA backend's bf16 mode: the matrix
 * products of the linear layers and the patch embedding, forward and
 * backward, round both operands to bf16 (round to nearest even) and
 * accumulate and write fp32; biases are added in fp32. Master weights,
 * gradients, LayerNorm, RMSNorm, softmax, GELU, SwiGLU, the loss and AdamW
 * stay fp32, and so do products narrower than AIM_BF16_MIN_WIDTH in or out
 * (ops.h: LoRA factors, adapter bottlenecks). On the CPU the attention's
 * score and value products (Q Kᵀ, P V and their backward) are GEMMs too
 * and take bf16 operands likewise for sequences of 64 tokens or more
 * (ops_attention.c); CUDA's attention is one fused fp32 kernel. The bias,
 * the residual add and (aim_linear_gelu_fwd_bf16, inference) the GELU run
 * inside oneDNN's kernel on the fp32 accumulators: the same semantics,
 * fewer passes over the activations.
 *
 * Weights: the bf16 copy of a weight tensor is made on its first product
 * and kept, keyed by the fp32 tensor's address, until that memory is
 * written or freed: aim_adamw_tensor (every optimizer step),
 * the CPU backend's free, upload and copy tell it so (aim_bf16_forget,
 * aim_bf16_stale). Memory the backend did not allocate (a weight file
 * mapped in place) can be replaced without notice, so each use also
 * compares a few sampled elements with the copy and remakes it when they
 * differ. Activations are rounded on every call into per-thread buffers.
 *
 * Same arguments and results as the fp32 ops of ops.h. */
#ifndef AIM_OPS_BF16_H
#define AIM_OPS_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ops.h"

/* NULL when the CPU can run bf16 products natively, else why not
 * ("this build has no oneDNN ...", "oneDNN only emulates bf16 on this CPU
 * ..."). */
const char *aim_bf16_unavailable(void);

/* fp32 -> bf16, round to nearest even (NaN stays NaN). */
static inline uint16_t aim_bf16_from_f32(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}
static inline float aim_bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}
/* dst[i] = bf16(src[i]) for n elements (threads for large n). */
void aim_bf16_convert(uint16_t *dst, const float *src, size_t n);

/* The weights' bf16 copies: [p, p+bytes) was written (copies made from it
 * are remade on their next use) / freed (copies are dropped). */
void aim_bf16_stale(const void *p, size_t bytes);
void aim_bf16_forget(const void *p, size_t bytes);

void aim_linear_fwd_bf16(float *y, const float *x, const float *w, const float *b,
			 int M, int in, int out);
void aim_linear_fwd_acc_bf16(float *y, const float *x, const float *w, const float *b,
			     int M, int in, int out);
void aim_linear_gelu_fwd_bf16(float *y, const float *x, const float *w, const float *b,
			      int M, int in, int out);
void aim_linear_bwd_bf16(float *dx, float *dw, float *db, const float *dy,
			 const float *x, const float *w, int M, int in, int out);
void aim_attention_fwd_bf16(float *out, float *lse, const float *qkv, int B, int K, int H,
			    int hd, aim_mask_kind mask, const int *prefix);
void aim_attention_bwd_bf16(float *dqkv, const float *dout, const float *qkv, const float *out,
			    const float *lse, int B, int K, int H, int hd, aim_mask_kind mask,
			    const int *prefix);
void aim_patch_embed_fwd_bf16(float *y, const float *patches, const float *w,
			      const float *b, int M, int P, int D);
void aim_patch_embed_bwd_bf16(float *dw, float *db, const float *dy, const float *patches,
			      int M, int P, int D);

#endif
