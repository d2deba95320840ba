/* The CUDA backend's ops: one entry point per field of the backend table
 * (backend.h), same arguments and semantics as the CPU functions of
 * ops.h. All pointers are device memory except `prefix`, which may be
 * host or device memory (aim_cuda_ints). */
#ifndef AIM_OPS_CUDA_CUH
#define AIM_OPS_CUDA_CUH

#include <stddef.h>

extern "C" {
#include "ops.h"
}

void cuda_linear_fwd(float *y, const float *x, const float *w, const float *b, int M, int in,
		     int out);
void cuda_linear_gelu_fwd(float *y, const float *x, const float *w, const float *b, int M,
			  int in, int out);
void cuda_linear_fwd_acc(float *y, const float *x, const float *w, const float *b, int M,
			 int in, int out);
void cuda_linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
		     const float *w, int M, int in, int out);
void cuda_patch_embed_fwd(float *y, const float *patches, const float *w, const float *b,
			  int M, int P, int D);
void cuda_patch_embed_bwd(float *dw, float *db, const float *dy, const float *patches, int M,
			  int P, int D);

void cuda_layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w,
			const float *b, int M, int D, float eps);
void cuda_layernorm_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
			const float *w, const float *mean, const float *rstd, int M, int D);

void cuda_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int M, int D,
		      float eps);
void cuda_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
		      const float *rstd, int M, int D);

void cuda_swiglu_fwd(float *y, const float *a, const float *b, size_t n);
void cuda_swiglu_bwd(float *da, float *db, const float *dy, const float *a, const float *b,
		     size_t n);

void cuda_gelu_fwd(float *y, const float *x, size_t n);
void cuda_gelu_bwd(float *dx, const float *dy, const float *x, size_t n);

void cuda_softmax_fwd(float *y, const float *x, int M, int N);
void cuda_softmax_bwd(float *dx, const float *dy, const float *y, int M, int N);

void cuda_attention_fwd(float *out, float *lse, const float *qkv, int B, int K, int H, int hd,
			aim_mask_kind mask, const int *prefix);
void cuda_attention_bwd(float *dqkv, const float *dout, const float *qkv, const float *out,
			const float *lse, int B, int K, int H, int hd, aim_mask_kind mask,
			const int *prefix);

struct aim_backend;
/* Every op field of the backend table (table_ops.cu): the ops above and
 * the training kernels of aim_cuda_extra.h. */
void aim_cuda_fill_ops(struct aim_backend *t);

/* The most dynamic shared memory an attention kernel asks for. */
size_t cuda_attention_smem(void);

void cuda_add_fwd(float *y, const float *a, const float *b, size_t n);
void cuda_add_rows(float *y, const float *t, int B, size_t N);
void cuda_axpy(float *y, float s, const float *x, size_t n);
void cuda_scale(float *y, float s, const float *x, size_t n);
void cuda_add_scaled_rows(float *y, const float *a, const float *s, const float *x, int B,
			  size_t N);

#endif
