/* What the CUDA backend (libaim-cuda.so) offers beyond the backend table
 * of backend.h: the precision switch, the reason it found no device, and
 * the training kernels the table has no field for yet (the normalised-
 * pixel loss and AdamW, requested in common/REQUESTS-cuda.md). All are
 * extern "C" symbols of the shared library; a tool reaches them with
 * dlsym() on the handle backend.c opened, or links the library directly.
 *
 * Pointers are device memory (from the table's alloc) unless a comment
 * says host. Each function has the same semantics as the CPU function it
 * names, to rounding; calls are queued on the backend's stream like the
 * table's ops, and the ones that return a number wait for it. Failures
 * of the device abort the process (a GPU failure mid-run is not
 * recoverable); bad arguments (n <= 0 and the like) do nothing. */
#ifndef AIM_CUDA_EXTRA_H
#define AIM_CUDA_EXTRA_H

#ifdef __cplusplus
extern "C" {
#endif

struct aim_backend;
/* The backend table on GPU `device` (for --device cuda:N); the plain
 * aim_backend_cuda() takes $AIM_CUDA_DEVICE, else 0. One device per
 * process: once started, asking for another returns NULL. NULL with the
 * reason in aim_cuda_unavailable() when the device is not usable. */
const struct aim_backend *aim_backend_cuda_device(int device);

/* Precision of the matrix products (linear, patch embedding):
 *   "fp32"  IEEE fp32 products (the default; matches the CPU to ~1e-6),
 *   "tf32"  TF32 tensor cores (10-bit mantissa products, fp32 sums),
 *   "bf16"  bf16 tensor cores: inputs rounded to bf16, fp32 accumulation,
 *           fp32 outputs; weights, norms and every other op stay fp32.
 * The environment variable AIM_CUDA_PRECISION sets the initial value.
 * Returns 0, or -1 (nothing changed) for an unknown name. */
int aim_cuda_set_precision(const char *name);
const char *aim_cuda_get_precision(void);

/* Why aim_backend_cuda() returned NULL, one line; "" when it did not. */
const char *aim_cuda_unavailable(void);
/* One line for -v and --version: "CUDA device 0: NVIDIA H100 80GB HBM3
 * (sm_90, 79.1 GiB), runtime 13.0, driver 13.0, cuBLAS 130000, GEMM
 * precision fp32". */
const char *aim_cuda_describe(void);

/* aim_pixloss_targets (train_loss.h): target [npatches, P] from patches,
 * standardised per patch with norm_pix (mean, unbiased variance + 1e-6,
 * in double); stats [npatches, 2] (may be NULL) gets mean and std. */
void aim_cuda_pixloss_targets(float *target, const float *patches, long npatches, int P,
			      int norm_pix, float *stats);
/* aim_pixloss_forward: the loss of pred [M, P], row i predicting target
 * row rows[i] + 1 of target [B·K, P] (rows from aim_pixloss_rows), each
 * row's squared error summed in double, the rows added in a fixed order,
 * divided by denom. rows [M] may be host or device memory. Waits for the
 * result. */
double aim_cuda_pixloss_forward(const float *pred, const float *target, const int *rows,
				long M, int P, double denom);
/* aim_pixloss_backward: dpred [M, P] = d loss / d pred (overwritten). */
void aim_cuda_pixloss_backward(const float *pred, const float *target, const int *rows,
			       long M, int P, double denom, float *dpred);

/* The pixel head runs on the predicting rows only: gather them,
 *   dst[i, :] = src[rows[i], :]   for i < M (rows of D floats),
 * and scatter their gradients back (plain stores, rows distinct):
 *   dst[rows[i], :] = src[i, :]. rows may be host or device memory. */
void aim_cuda_gather_rows(float *dst, const float *src, const int *rows, long M, int D);
void aim_cuda_scatter_rows(float *dst, const float *src, const int *rows, long M, int D);

/* aim_adamw_tensor (train_optim.h): one AdamW update of one tensor of n
 * values with its float arithmetic: decoupled decay w *= 1 − lr·weight_decay
 * when decay is non-zero, moments m, v (fp32, device), bias correction
 * with the 1-based step. */
void aim_cuda_adamw(float *w, float *m, float *v, const float *g, long n, double lr,
		    double beta1, double beta2, double eps, double weight_decay, int decay,
		    long step);

/* aim_sumsq: Σ x[i]² over n values, summed in double in a fixed order
 * (the global gradient norm is the square root of the sum over tensors).
 * Waits for the result. */
double aim_cuda_sumsq(const float *x, long n);

#ifdef __cplusplus
}
#endif

#endif
