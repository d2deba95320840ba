/* The CUDA backend: device start-up, memory, the stream and scratch
 * buffers every op shares, and the table that backend.c finds with
 * dlsym("aim_backend_cuda").
 *
 * Everything runs on one non-blocking stream in call order, so the ops of
 * the table need no synchronisation between them; upload and download
 * wait for the stream (the caller may reuse or read its host buffer at
 * once, as with the CPU backend). Environment:
 *   AIM_CUDA_DEVICE=N        which GPU (default 0)
 *   AIM_CUDA_PRECISION=fp32|tf32|bf16   GEMM precision (aim_cuda_extra.h)
 *   AIM_CUDA_SYNC=1          wait after every op, so a failing kernel is
 *                            reported under its own name (debugging) */
#include <string.h>

#include "cuda/cuda_blas.cuh"
#include "cuda/cuda_util.cuh"
#include "cuda/ops_cuda.cuh"

extern "C" {
#include "backend.h"
}
#include "cuda/aim_cuda_extra.h"

static cudaStream_t g_stream;
static cublasHandle_t g_blas;
static cublasComputeType_t g_compute = CUBLAS_COMPUTE_32F;
static const char *g_precision = "fp32";
static int g_sync_each;
static char g_unavailable[256];
static char g_describe[512];

static void *g_scratch[AIM_SCRATCH_SLOTS];
static size_t g_scratch_bytes[AIM_SCRATCH_SLOTS];

/* The last ints uploaded to each slot (aim_cuda_ints): models pass the
 * same host array to every layer, so one upload serves a whole step. */
static struct {
	int *host;
	long n;
	const int *dev; /* where they went */
} g_ints[AIM_SCRATCH_SLOTS];

[[noreturn]] void aim_cuda_fail(const char *op, const char *call, const char *why)
{
	fprintf(stderr, "aim: CUDA backend: %s failed (%s): %s; aborting\n", op, call, why);
	fflush(stderr);
	abort();
}

void aim_cuda_launched(const char *op)
{
	AIM_CUDA_CHECK(op, cudaGetLastError());
	if (g_sync_each)
		AIM_CUDA_CHECK(op, cudaStreamSynchronize(g_stream));
}

cudaStream_t aim_cuda_stream(void) { return g_stream; }
cublasHandle_t aim_cuda_blas(void) { return g_blas; }
cublasComputeType_t aim_cuda_compute_type(void) { return g_compute; }

void *aim_cuda_scratch(int slot, size_t bytes)
{
	if (bytes <= g_scratch_bytes[slot] && g_scratch[slot])
		return g_scratch[slot];
	if (g_scratch[slot]) {
		/* queued ops may still read the old buffer */
		AIM_CUDA_CHECK("scratch", cudaStreamSynchronize(g_stream));
		AIM_CUDA_CHECK("scratch", cudaFree(g_scratch[slot]));
		g_scratch[slot] = NULL;
		g_scratch_bytes[slot] = 0;
		g_ints[slot].dev = NULL; /* uploaded ints went with it */
	}
	size_t n = bytes < 4096 ? 4096 : bytes + bytes / 4; /* room to grow */
	AIM_CUDA_CHECK("scratch", cudaMalloc(&g_scratch[slot], n));
	g_scratch_bytes[slot] = n;
	return g_scratch[slot];
}

const int *aim_cuda_ints(int slot, const int *p, long n)
{
	cudaPointerAttributes at;
	if (cudaPointerGetAttributes(&at, p) == cudaSuccess &&
	    (at.type == cudaMemoryTypeDevice || at.type == cudaMemoryTypeManaged))
		return p;
	(void)cudaGetLastError(); /* a plain host pointer is not an error */
	const size_t bytes = sizeof(int) * (size_t)n;
	int *dev = (int *)aim_cuda_scratch(slot, bytes);
	if (dev == g_ints[slot].dev && g_ints[slot].n == n &&
	    memcmp(g_ints[slot].host, p, bytes) == 0)
		return dev;
	int *keep = (int *)realloc(g_ints[slot].host, bytes ? bytes : 1);
	if (!keep)
		aim_cuda_fail("int upload", "realloc", "out of host memory");
	memcpy(keep, p, bytes);
	g_ints[slot].host = keep;
	g_ints[slot].n = n;
	g_ints[slot].dev = dev;
	/* Ordered after the ops that still read the previous values;
	 * waiting makes the copy from pageable memory complete before the
	 * caller may change its array. */
	AIM_CUDA_CHECK("int upload",
		       cudaMemcpyAsync(dev, keep, bytes, cudaMemcpyHostToDevice, g_stream));
	AIM_CUDA_CHECK("int upload", cudaStreamSynchronize(g_stream));
	return dev;
}

void aim_cuda_fetch(void *host, const void *dev, size_t bytes, const char *op)
{
	AIM_CUDA_CHECK(op, cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, g_stream));
	AIM_CUDA_CHECK(op, cudaStreamSynchronize(g_stream));
}

/* ---- precision ---------------------------------------------------------- */

extern "C" int aim_cuda_set_precision(const char *name)
{
	if (!name)
		return -1;
	if (!strcmp(name, "fp32")) {
		g_compute = CUBLAS_COMPUTE_32F;
		g_precision = "fp32";
	} else if (!strcmp(name, "tf32")) {
		g_compute = CUBLAS_COMPUTE_32F_FAST_TF32;
		g_precision = "tf32";
	} else if (!strcmp(name, "bf16")) {
		g_compute = CUBLAS_COMPUTE_32F_FAST_16BF;
		g_precision = "bf16";
	} else {
		return -1;
	}
	return 0;
}

extern "C" const char *aim_cuda_get_precision(void) { return g_precision; }
extern "C" const char *aim_cuda_unavailable(void) { return g_unavailable; }

extern "C" const char *aim_cuda_describe(void)
{
	if (!g_describe[0])
		return "no CUDA device in use";
	/* the precision may have changed since start-up */
	static char line[600];
	snprintf(line, sizeof line, "%s, GEMM precision %s", g_describe, g_precision);
	return line;
}

/* ---- memory --------------------------------------------------------------- */

static void *cuda_alloc(size_t bytes)
{
	void *p = NULL;
	size_t n = bytes ? bytes : 256;
	if (cudaMalloc(&p, n) != cudaSuccess) {
		(void)cudaGetLastError(); /* out of memory is the caller's to report */
		return NULL;
	}
	AIM_CUDA_CHECK("alloc", cudaMemsetAsync(p, 0, n, g_stream));
	return p;
}

static void cuda_free(void *p)
{
	if (!p)
		return;
	AIM_CUDA_CHECK("free", cudaStreamSynchronize(g_stream));
	AIM_CUDA_CHECK("free", cudaFree(p));
}

static void cuda_upload(void *dst, const void *src, size_t bytes)
{
	if (!bytes)
		return;
	AIM_CUDA_CHECK("upload",
		       cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream));
	AIM_CUDA_CHECK("upload", cudaStreamSynchronize(g_stream));
}

static void cuda_download(void *dst, const void *src, size_t bytes)
{
	if (!bytes)
		return;
	aim_cuda_fetch(dst, src, bytes, "download");
}

static void cuda_copy(void *dst, const void *src, size_t bytes)
{
	if (!bytes || dst == src)
		return;
	AIM_CUDA_CHECK("copy",
		       cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream));
	if (g_sync_each)
		AIM_CUDA_CHECK("copy", cudaStreamSynchronize(g_stream));
}

static void cuda_zero(void *p, size_t bytes)
{
	if (!bytes)
		return;
	AIM_CUDA_CHECK("zero", cudaMemsetAsync(p, 0, bytes, g_stream));
	if (g_sync_each)
		AIM_CUDA_CHECK("zero", cudaStreamSynchronize(g_stream));
}

static void cuda_synchronize(void)
{
	AIM_CUDA_CHECK("synchronize", cudaStreamSynchronize(g_stream));
}

/* The table: memory and descriptions here, the ops by name in
 * table_ops.cu (fields this library does not know would stay NULL). */
static aim_backend cuda_table;

void aim_cuda_fill_group(aim_backend *t); /* group_nccl.cu */

static void fill_table(aim_backend *t)
{
	memset(t, 0, sizeof *t);
	t->abi = AIM_BACKEND_ABI;
	t->name = "cuda";
	t->host_memory = 0;
	t->alloc = cuda_alloc;
	t->free = cuda_free;
	t->upload = cuda_upload;
	t->download = cuda_download;
	t->copy = cuda_copy;
	t->zero = cuda_zero;
	t->synchronize = cuda_synchronize;
	t->set_precision = aim_cuda_set_precision;
	t->describe = aim_cuda_describe;
	aim_cuda_fill_ops(t);
	aim_cuda_fill_group(t);
}

/* ---- start-up -------------------------------------------------------------- */

/* A kernel this library was compiled with: asking for its attributes
 * fails when the device's architecture has no code in the library. */
__global__ void backend_probe_kernel(int *p)
{
	if (p)
		*p = 0;
}

static const aim_backend *unavailable(const char *fmt, const char *detail, int n)
{
	snprintf(g_unavailable, sizeof g_unavailable, fmt, detail, n);
	(void)cudaGetLastError();
	return NULL;
}

/* dev < 0: AIM_CUDA_DEVICE, else device 0. */
static const aim_backend *start(int dev)
{
	int count = 0;
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e == cudaErrorInsufficientDriver) {
		/* The runtime says "insufficient" also when there is no driver at
		 * all; the driver version (0: none) tells the two apart. */
		int drv = 0, rt = 0;
		cudaDriverGetVersion(&drv);
		cudaRuntimeGetVersion(&rt);
		if (drv == 0)
			return unavailable("no NVIDIA driver found (libcuda.so.1 is not installed)%s%.0d",
					   "", 0);
		char need[64];
		snprintf(need, sizeof need, "%d.%d, older than this build's CUDA runtime %d.%d",
			 drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
		return unavailable("the NVIDIA driver supports CUDA %s; update the driver%.0d", need, 0);
	}
	if (e == cudaErrorNoDevice)
		return unavailable("no CUDA device (the NVIDIA driver sees no GPU)%s%.0d", "", 0);
	if (e != cudaSuccess)
		return unavailable("no CUDA device: %s%.0d", cudaGetErrorString(e), 0);
	if (count <= 0)
		return unavailable("no CUDA device%s%.0d", "", 0);
	const char *env = getenv("AIM_CUDA_DEVICE");
	if (dev < 0 && env && *env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (*end || v < 0 || v >= count)
			return unavailable("AIM_CUDA_DEVICE=%s: no such device (found %d)", env, count);
		dev = (int)v;
	}
	if (dev < 0)
		dev = 0;
	if (dev >= count) {
		char num[16];
		snprintf(num, sizeof num, "%d", dev);
		return unavailable("no CUDA device %s (found %d)", num, count);
	}
	if ((e = cudaSetDevice(dev)) != cudaSuccess)
		return unavailable("cannot use the CUDA device: %s%.0d", cudaGetErrorString(e), 0);
	int major = 0;
	if ((e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev)) !=
	    cudaSuccess)
		return unavailable("cannot query the CUDA device: %s%.0d", cudaGetErrorString(e), 0);
	if (major < 8)
		return unavailable("the GPU is compute capability %s%d.x; this build needs 8.0 "
				   "or later", "", major);
	int smem = 0;
	if ((e = cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)) !=
	    cudaSuccess)
		return unavailable("cannot query the CUDA device: %s%.0d", cudaGetErrorString(e), 0);
	if ((size_t)smem < cuda_attention_smem())
		return unavailable("the GPU offers %s%d bytes of shared memory per block; attention needs more",
				   "", smem);
	cudaFuncAttributes fa;
	if ((e = cudaFuncGetAttributes(&fa, backend_probe_kernel)) != cudaSuccess)
		return unavailable("this build has no code for the GPU's architecture: %s%.0d",
				   cudaGetErrorString(e), 0);
	if ((e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking)) != cudaSuccess)
		return unavailable("cannot create a CUDA stream: %s%.0d", cudaGetErrorString(e), 0);
	cublasStatus_t s = cublasCreate(&g_blas);
	if (s != CUBLAS_STATUS_SUCCESS)
		return unavailable("cannot start cuBLAS: %s%.0d", cublasGetStatusString(s), 0);
	if ((s = cublasSetStream(g_blas, g_stream)) != CUBLAS_STATUS_SUCCESS)
		return unavailable("cannot start cuBLAS: %s%.0d", cublasGetStatusString(s), 0);
	const char *prec = getenv("AIM_CUDA_PRECISION");
	if (prec && *prec && aim_cuda_set_precision(prec) < 0)
		fprintf(stderr, "aim: CUDA backend: AIM_CUDA_PRECISION=%s is not fp32, tf32 or bf16; "
				"using fp32\n", prec);
	cudaDeviceProp prop;
	int rt = 0, drv = 0, blas = 0;
	if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess) {
		cudaRuntimeGetVersion(&rt);
		cudaDriverGetVersion(&drv);
		cublasGetVersion(g_blas, &blas);
		snprintf(g_describe, sizeof g_describe,
			 "CUDA device %d: %.200s (sm_%d%d, %.1f GiB), runtime %d.%d, driver %d.%d, "
			 "cuBLAS %d", dev, prop.name, prop.major, prop.minor,
			 prop.totalGlobalMem / 1073741824.0, rt / 1000, rt % 1000 / 10, drv / 1000,
			 drv % 1000 / 10, blas);
	}
	(void)cudaGetLastError();
	const char *sync = getenv("AIM_CUDA_SYNC");
	g_sync_each = sync && *sync && strcmp(sync, "0") != 0;
	fill_table(&cuda_table);
	return &cuda_table;
}

/* The backend on one device: the first call starts it, later calls return
 * the same table if they name the same device, NULL otherwise (the
 * library's state — stream, cuBLAS handle, scratch — serves one device per
 * process). */
static const aim_backend *backend_on(int dev)
{
	static int started, on;
	static const aim_backend *table;
	if (!started) {
		started = 1;
		table = start(dev);
		if (table)
			cudaGetDevice(&on);
		return table;
	}
	if (table && dev >= 0 && dev != on) {
		snprintf(g_unavailable, sizeof g_unavailable,
			 "the CUDA backend already runs on device %d", on);
		return NULL;
	}
	return table;
}

extern "C" const aim_backend *aim_backend_cuda(void) { return backend_on(-1); }

extern "C" const aim_backend *aim_backend_cuda_device(int device)
{
	return backend_on(device < 0 ? 0 : device);
}
