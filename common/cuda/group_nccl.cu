/* Sums among the GPUs of one node (the backend table's group_* fields),
 * with NCCL.
 *
 * NCCL is opened with dlopen when a group is first asked for, so the
 * library — and every single-GPU run — works on machines without it; a
 * multi-process run there falls back to the host path (download, MPI,
 * upload). nccl.h is only read for its types and constants.
 *
 * The collectives are queued on the backend's one stream, in order with
 * the ops that produced the gradients and the AdamW that reads them, so
 * no synchronisation is needed around them. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#if __has_include(<nccl.h>)
#include <nccl.h>
#else
typedef struct ncclComm *ncclComm_t;
typedef struct { char internal[128]; } ncclUniqueId;
typedef enum { ncclSuccess = 0 } ncclResult_t;
typedef enum { ncclFloat32 = 7 } ncclDataType_t;
typedef enum { ncclSum = 0 } ncclRedOp_t;
#endif

#include "cuda/cuda_util.cuh"

extern "C" {
#include "backend.h"
}

static struct {
	void *lib;
	ncclResult_t (*get_unique_id)(ncclUniqueId *);
	ncclResult_t (*comm_init_rank)(ncclComm_t *, int, ncclUniqueId, int);
	ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t,
				   ncclComm_t, cudaStream_t);
	ncclResult_t (*reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, int,
			       ncclComm_t, cudaStream_t);
	ncclResult_t (*broadcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t,
				  cudaStream_t);
	const char *(*error_string)(ncclResult_t);
	ncclComm_t comm;
	char error[256];
} nccl;

static int fail(const char *what, ncclResult_t r)
{
	snprintf(nccl.error, sizeof nccl.error, "NCCL %s: %s", what,
		 nccl.error_string ? nccl.error_string(r) : "failed");
	return -1;
}

/* Load libnccl.so.2 and its entry points once; -1 with the reason. */
static int load(void)
{
	if (nccl.lib)
		return 0;
	void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		h = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(nccl.error, sizeof nccl.error, "NCCL is not installed (%.200s)", dlerror());
		return -1;
	}
#define SYM(field, name)                                                                   \
	if (!(*(void **)&nccl.field = dlsym(h, name))) {                                   \
		snprintf(nccl.error, sizeof nccl.error, "NCCL library without %s", name); \
		dlclose(h);                                                                \
		return -1;                                                                 \
	}
	SYM(get_unique_id, "ncclGetUniqueId")
	SYM(comm_init_rank, "ncclCommInitRank")
	SYM(all_reduce, "ncclAllReduce")
	SYM(reduce, "ncclReduce")
	SYM(broadcast, "ncclBroadcast")
	SYM(error_string, "ncclGetErrorString")
#undef SYM
	nccl.lib = h;
	return 0;
}

static int group_id(void *id, size_t cap)
{
	if (load() < 0)
		return -1;
	if (cap < sizeof(ncclUniqueId)) {
		snprintf(nccl.error, sizeof nccl.error, "NCCL id needs %zu bytes",
			 sizeof(ncclUniqueId));
		return -1;
	}
	ncclUniqueId u;
	ncclResult_t r = nccl.get_unique_id(&u);
	if (r != ncclSuccess)
		return fail("ncclGetUniqueId", r);
	memcpy(id, &u, sizeof u);
	return (int)sizeof u;
}

static int group_join(const void *id, size_t len, int rank, int size)
{
	if (load() < 0)
		return -1;
	if (len != sizeof(ncclUniqueId)) {
		snprintf(nccl.error, sizeof nccl.error, "NCCL id of %zu bytes, expected %zu", len,
			 sizeof(ncclUniqueId));
		return -1;
	}
	ncclUniqueId u;
	memcpy(&u, id, sizeof u);
	ncclResult_t r = nccl.comm_init_rank(&nccl.comm, size, u, rank);
	return r == ncclSuccess ? 0 : fail("ncclCommInitRank", r);
}

static int group_allreduce(float *x, long n)
{
	if (!nccl.comm || n <= 0)
		return n <= 0 ? 0 : -1;
	ncclResult_t r = nccl.all_reduce(x, x, (size_t)n, ncclFloat32, ncclSum, nccl.comm,
					 aim_cuda_stream());
	return r == ncclSuccess ? 0 : fail("ncclAllReduce", r);
}

static int group_reduce(float *x, long n)
{
	if (!nccl.comm || n <= 0)
		return n <= 0 ? 0 : -1;
	ncclResult_t r = nccl.reduce(x, x, (size_t)n, ncclFloat32, ncclSum, 0, nccl.comm,
				     aim_cuda_stream());
	return r == ncclSuccess ? 0 : fail("ncclReduce", r);
}

static int group_bcast(float *x, long n)
{
	if (!nccl.comm || n <= 0)
		return n <= 0 ? 0 : -1;
	ncclResult_t r = nccl.broadcast(x, x, (size_t)n, ncclFloat32, 0, nccl.comm,
					aim_cuda_stream());
	return r == ncclSuccess ? 0 : fail("ncclBroadcast", r);
}

static const char *group_error(void) { return nccl.error; }

/* Page-locked host buffers: uploads from them skip the driver's staging. */
static void *host_alloc(size_t bytes)
{
	void *p = NULL;
	if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess) {
		(void)cudaGetLastError();
		return NULL;
	}
	return p;
}

static void host_free(void *p)
{
	if (p)
		cudaFreeHost(p);
}

void aim_cuda_fill_group(aim_backend *t)
{
	t->host_alloc = host_alloc;
	t->host_free = host_free;
	t->group_id = group_id;
	t->group_join = group_join;
	t->group_allreduce = group_allreduce;
	t->group_reduce = group_reduce;
	t->group_bcast = group_bcast;
	t->group_error = group_error;
}
