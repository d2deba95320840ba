/* The seam between the model and the hardware: a table of every op the
 * model uses, plus the memory calls it needs. The model code calls only
 * through this table; which table is chosen happens in one place,
 * aim_backend_select(). The CPU table (OpenBLAS + OpenMP, ops.h) is built
 * in; a CUDA table lives in a shared library (build/libaim-cuda.so,
 * installed as PREFIX/lib/aim/libaim-cuda.so) loaded with dlopen, which
 * exports `const aim_backend *aim_backend_cuda(void)` (and
 * aim_backend_cuda_device(int), aim_cuda_unavailable()) and fills the same
 * table with the same semantics (ops.h documents them). No tool needs an
 * #ifdef.
 *
 * Memory: every pointer an op takes is backend memory (from alloc), except
 * the attention's prefix lengths and the loss's rows, which are host memory.
 * Fields are only ever appended; AIM_BACKEND_ABI counts the layouts. */
#ifndef AIM_BACKEND_H
#define AIM_BACKEND_H

#include <stddef.h>

#include "ops.h"

#define AIM_BACKEND_ABI 6

typedef struct aim_backend {
	int abi;             /* AIM_BACKEND_ABI */
	const char *name;    /* "cpu", "cuda" */
	int host_memory;     /* 1: buffers are ordinary host memory */

	/* Memory: buffers the ops read and write. */
	void *(*alloc)(size_t bytes);              /* zero-filled; NULL on failure */
	void (*free)(void *p);
	void (*upload)(void *dst, const void *host_src, size_t bytes);
	void (*download)(void *host_dst, const void *src, size_t bytes);
	void (*copy)(void *dst, const void *src, size_t bytes); /* within backend memory */
	void (*zero)(void *p, size_t bytes);
	void (*synchronize)(void);

	/* Ops: same arguments and semantics as the aim_*_fwd/bwd functions
	 * of ops.h. */
	void (*linear_fwd)(float *y, const float *x, const float *w, const float *b,
			   int M, int in, int out);
	void (*linear_fwd_acc)(float *y, const float *x, const float *w, const float *b,
			       int M, int in, int out);
	void (*linear_bwd)(float *dx, float *dw, float *db, const float *dy,
			   const float *x, const float *w, int M, int in, int out);
	void (*patch_embed_fwd)(float *y, const float *patches, const float *w,
				const float *b, int M, int P, int D);
	void (*patch_embed_bwd)(float *dw, float *db, const float *dy,
				const float *patches, int M, int P, int D);
	void (*layernorm_fwd)(float *y, float *mean, float *rstd, const float *x,
			      const float *w, const float *b, int M, int D, float eps);
	void (*layernorm_bwd)(float *dx, float *dw, float *db, const float *dy,
			      const float *x, const float *w, const float *mean,
			      const float *rstd, int M, int D);
	void (*gelu_fwd)(float *y, const float *x, size_t n);
	void (*gelu_bwd)(float *dx, const float *dy, const float *x, size_t n);
	void (*softmax_fwd)(float *y, const float *x, int M, int N);
	void (*softmax_bwd)(float *dx, const float *dy, const float *y, int M, int N);
	void (*attention_fwd)(float *out, float *lse, const float *qkv, int B, int K,
			      int H, int hd, aim_mask_kind mask, const int *prefix);
	void (*attention_bwd)(float *dqkv, const float *dout, const float *qkv,
			      const float *out, const float *lse, int B, int K, int H,
			      int hd, aim_mask_kind mask, const int *prefix);
	void (*add_fwd)(float *y, const float *a, const float *b, size_t n);
	void (*add_rows)(float *y, const float *t, int B, size_t N);
	void (*axpy)(float *y, float s, const float *x, size_t n);
	void (*scale)(float *y, float s, const float *x, size_t n);

	/* Optional (NULL when the backend has no use for it): run fn(ctx, g)
	 * for g in [0, ngroups) concurrently, each call on one thread with
	 * the ops above running single-threaded inside it. The CPU backend
	 * uses it to push groups of samples through the whole trunk without
	 * a barrier between ops. */
	void (*parallel_groups)(void (*fn)(void *ctx, int g), void *ctx, int ngroups);
	int (*max_threads)(void);

	/* ---- ABI 2 ---- */
	/* Precision of the matrix products: "fp32", "tf32", "bf16" (bf16
	 * products, fp32 accumulation; weights and other ops stay fp32).
	 * 0, or -1 if the backend does not offer it (CPU: fp32 only). */
	int (*set_precision)(const char *name);
	/* One line for -v and --version (device, library versions). */
	const char *(*describe)(void);

	/* Training, with the semantics of train_loss.h and train_optim.h
	 * (backend memory; rows are host memory). */
	void (*pixloss_targets)(float *target, const float *patches, long npatches, int P,
				int norm_pix, float *stats);
	double (*pixloss_forward)(const float *pred, const float *target, const int *rows,
				  long M, int P, double denom);
	void (*pixloss_backward)(const float *pred, const float *target, const int *rows,
				 long M, int P, double denom, float *dpred);
	/* dst[i] = src[rows[i]] (gather) / dst[rows[i]] = src[i] (scatter),
	 * rows of D floats, i < M. */
	void (*gather_rows)(float *dst, const float *src, const int *rows, long M, int D);
	void (*scatter_rows)(float *dst, const float *src, const int *rows, long M, int D);
	void (*adamw)(float *w, float *m, float *v, const float *g, long n, double lr,
		      double beta1, double beta2, double eps, double weight_decay, int decay,
		      long step);
	double (*sumsq)(const float *x, long n); /* for the global gradient norm */

	/* ---- ABI 3 ---- */
	/* Page-locked host memory for what goes up every step (the input
	 * batches): uploads from it run at full bus speed. NULL: malloc. */
	void *(*host_alloc)(size_t bytes);
	void (*host_free)(void *p);
	/* Sums among the processes of one node, in device memory (NCCL); NULL
	 * when the backend has none (gradients then go through host memory
	 * and MPI). group_id, on local rank 0: a new group id into
	 * id[0..cap), returns its length (-1 on failure). group_join, on every
	 * local rank with that id. The others return 0 or -1; group_error
	 * says why. */
	int (*group_id)(void *id, size_t cap);
	int (*group_join)(const void *id, size_t len, int rank, int size);
	int (*group_allreduce)(float *x, long n); /* sum, on every rank */
	int (*group_reduce)(float *x, long n);    /* sum, onto local rank 0 */
	int (*group_bcast)(float *x, long n);     /* local rank 0's x to all */
	const char *(*group_error)(void);

	/* ---- ABI 4 ---- */
	/* The AIMv2 family's ops (ops.h): RMSNorm and the SwiGLU gate. */
	void (*rmsnorm_fwd)(float *y, float *rstd, const float *x, const float *w, int M, int D,
			    float eps);
	void (*rmsnorm_bwd)(float *dx, float *dw, const float *dy, const float *x,
			    const float *w, const float *rstd, int M, int D);
	void (*swiglu_fwd)(float *y, const float *a, const float *b, size_t n);
	void (*swiglu_bwd)(float *da, float *db, const float *dy, const float *a,
			   const float *b, size_t n);

	/* ---- ABI 5 ---- */
	/* y = GELU(x·wᵀ + b), aim_linear_gelu_fwd: the MLP's first layer in
	 * inference, where a backend may fuse the two (the CPU's bf16 mode
	 * does; CUDA runs them one after the other: cuBLASLt's GELU epilogue
	 * is the tanh approximation, not the exact GELU). */
	void (*linear_gelu_fwd)(float *y, const float *x, const float *w, const float *b,
				int M, int in, int out);

	/* ---- ABI 6 ---- */
	/* y[b, :] = a[b, :] + s[b]·x[b, :] over B rows of N (a NULL: 0), s in
	 * backend memory: stochastic depth's residual add of a branch and the
	 * branch's gradient (aim_add_scaled_rows). */
	void (*add_scaled_rows)(float *y, const float *a, const float *s, const float *x, int B,
				size_t N);
} aim_backend;

/* The built-in CPU backend. */
const aim_backend *aim_backend_cpu(void);

/* Choose a backend by name: "cpu"; "cuda" or "cuda:N" (GPU N; an error,
 * with the library's reason, if the CUDA library cannot be loaded or finds
 * no usable device); NULL or "auto" (CUDA when it loads, else CPU). The CUDA library is looked up in $AIM_CUDA_LIB, then beside
 * the running program (../lib/aim/ and ../), then by the loader's path.
 * Returns NULL with aim_error() set on failure. */
const aim_backend *aim_backend_select(const char *device);

/* --precision NAME on a chosen backend: "fp32", "bf16" (or "tf32");
 * NULL leaves the backend's default. An error naming the backend if it
 * does not offer that precision (the CPU: fp32 only). */
int aim_backend_set_precision(const aim_backend *be, const char *precision);

/* Option parsers for the tools (a bad value is a usage error, exit 2):
 * --device cpu|auto|cuda|cuda:N and --precision fp32|tf32|bf16. Whether
 * the device can be used is decided by aim_backend_select. */
const char *aim_opt_device(const char *arg);
const char *aim_opt_precision(const char *arg);

/* "cuda (CUDA device 0: NVIDIA H100 ..., GEMM precision bf16)": what -v
 * says about the backend in use. */
const char *aim_backend_line(const aim_backend *be);

/* One line for --version: "cpu (OpenBLAS ..., N threads); cuda: <the CUDA
 * library's description, or why it cannot be used>". Loads the CUDA
 * library (starting its device) on the first call. */
const char *aim_backend_describe(void);

/* aim_backend_select for this process of a job: several processes on one
 * machine asking for "cuda" (or "auto") take one GPU each, local rank i
 * GPU i ("auto": the CPU for a rank without one). */
const aim_backend *aim_backend_for_rank(const char *device);

#endif
