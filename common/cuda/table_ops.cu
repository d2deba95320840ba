/* The op fields of the CUDA backend table, in one place shared by the
 * library (backend_cuda.cu adds memory, start-up and the descriptions) and
 * the CPU emulation test (tests/gpu/emu_ops.cc), so the table the GPU runs
 * is the table the emulation checks field by field against the CPU. */
#include "cuda/aim_cuda_extra.h"
#include "cuda/ops_cuda.cuh"

extern "C" {
#include "backend.h"
}

/* Filled by name (C++17 has no designated initialisers), so fields that
 * backend.h appends cannot be matched to the wrong function. The optional
 * fields parallel_groups and max_threads stay NULL on purpose: the GPU
 * runs whole ops, there are no groups of samples to push through. */
void aim_cuda_fill_ops(aim_backend *t)
{
	t->linear_fwd = cuda_linear_fwd;
	t->linear_fwd_acc = cuda_linear_fwd_acc;
	t->linear_bwd = cuda_linear_bwd;
	t->patch_embed_fwd = cuda_patch_embed_fwd;
	t->patch_embed_bwd = cuda_patch_embed_bwd;
	t->layernorm_fwd = cuda_layernorm_fwd;
	t->layernorm_bwd = cuda_layernorm_bwd;
	t->gelu_fwd = cuda_gelu_fwd;
	t->gelu_bwd = cuda_gelu_bwd;
	t->softmax_fwd = cuda_softmax_fwd;
	t->softmax_bwd = cuda_softmax_bwd;
	t->attention_fwd = cuda_attention_fwd;
	t->attention_bwd = cuda_attention_bwd;
	t->add_fwd = cuda_add_fwd;
	t->add_rows = cuda_add_rows;
	t->axpy = cuda_axpy;
	t->scale = cuda_scale;
	t->parallel_groups = NULL;
	t->max_threads = NULL;
	/* ABI 2: training */
	t->pixloss_targets = aim_cuda_pixloss_targets;
	t->pixloss_forward = aim_cuda_pixloss_forward;
	t->pixloss_backward = aim_cuda_pixloss_backward;
	t->gather_rows = aim_cuda_gather_rows;
	t->scatter_rows = aim_cuda_scatter_rows;
	t->adamw = aim_cuda_adamw;
	t->sumsq = aim_cuda_sumsq;
	/* ABI 4: the AIMv2 family */
	t->rmsnorm_fwd = cuda_rmsnorm_fwd;
	t->rmsnorm_bwd = cuda_rmsnorm_bwd;
	t->swiglu_fwd = cuda_swiglu_fwd;
	t->swiglu_bwd = cuda_swiglu_bwd;
	t->linear_gelu_fwd = cuda_linear_gelu_fwd;
	t->add_scaled_rows = cuda_add_scaled_rows;
}
