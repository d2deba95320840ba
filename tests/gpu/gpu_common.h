/* Shared by the GPU test and benchmark: open the CUDA backend (or skip),
 * find the extra entry points of aim_cuda_extra.h in the same loaded
 * library, move buffers to and from the device, random inputs. */
#ifndef AIM_GPU_COMMON_H
#define AIM_GPU_COMMON_H

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "err.h"

/* aim_cuda_extra.h, looked up with dlsym in the library backend.c loaded */
typedef struct {
	int (*set_precision)(const char *);
	const char *(*get_precision)(void);
	const char *(*unavailable)(void);
	const char *(*describe)(void);
	void (*pixloss_targets)(float *, const float *, long, int, int, float *);
	double (*pixloss_forward)(const float *, const float *, const int *, long, int, double);
	void (*pixloss_backward)(const float *, const float *, const int *, long, int, double,
				 float *);
	void (*gather_rows)(float *, const float *, const int *, long, int);
	void (*scatter_rows)(float *, const float *, const int *, long, int);
	void (*adamw)(float *, float *, float *, const float *, long, double, double, double, double,
		      double, int, long);
	double (*sumsq)(const float *, long);
} gpu_extra;

static const aim_backend *gpu, *cpu;
static gpu_extra ext;

/* The library beside the build (build/libaim-cuda.so) unless AIM_CUDA_LIB
 * names one; both loads must use the same path so that the dlsym below
 * finds the very copy that backend.c started. */
static inline void gpu_lib_path(void)
{
	if (getenv("AIM_CUDA_LIB"))
		return;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return;
	exe[n] = 0;
	char *slash = strrchr(exe, '/'); /* BUILD/gpu/NAME (not BUILD/tests/: */
	for (int up = 0; up < 2 && slash; up++) { /* tests/run.sh runs all there) */
		*slash = 0;
		slash = strrchr(exe, '/');
	}
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/libaim-cuda.so", exe);
	setenv("AIM_CUDA_LIB", path, 1);
}

/* 0 when the CUDA backend is up; 77 (skip) when there is none. */
static inline int gpu_open(const char *prog)
{
	gpu_lib_path();
	cpu = aim_backend_cpu();
	gpu = aim_backend_select("cuda");
	void *h = dlopen(getenv("AIM_CUDA_LIB"), RTLD_NOW | RTLD_NOLOAD);
	if (!gpu) {
		const char *(*why)(void) = NULL;
		if (h)
			*(void **)&why = dlsym(h, "aim_cuda_unavailable");
		printf("%s: no CUDA device: skipped (%s)\n", prog,
		       why && *why() ? why() : aim_errmsg());
		return 77;
	}
	if (h) {
		*(void **)&ext.set_precision = dlsym(h, "aim_cuda_set_precision");
		*(void **)&ext.get_precision = dlsym(h, "aim_cuda_get_precision");
		*(void **)&ext.unavailable = dlsym(h, "aim_cuda_unavailable");
		*(void **)&ext.describe = dlsym(h, "aim_cuda_describe");
		*(void **)&ext.pixloss_targets = dlsym(h, "aim_cuda_pixloss_targets");
		*(void **)&ext.pixloss_forward = dlsym(h, "aim_cuda_pixloss_forward");
		*(void **)&ext.pixloss_backward = dlsym(h, "aim_cuda_pixloss_backward");
		*(void **)&ext.gather_rows = dlsym(h, "aim_cuda_gather_rows");
		*(void **)&ext.scatter_rows = dlsym(h, "aim_cuda_scatter_rows");
		*(void **)&ext.adamw = dlsym(h, "aim_cuda_adamw");
		*(void **)&ext.sumsq = dlsym(h, "aim_cuda_sumsq");
	}
	return 0;
}

static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

/* A device copy of n host floats (or ints: same size). */
static inline void *to_gpu(const void *host, size_t bytes)
{
	void *d = gpu->alloc(bytes);
	if (!d) {
		fprintf(stderr, "device out of memory (%zu bytes)\n", bytes);
		exit(1);
	}
	if (host)
		gpu->upload(d, host, bytes);
	return d;
}

static inline float *from_gpu(const void *dev, size_t n)
{
	float *h = xmalloc(n * sizeof(float));
	gpu->download(h, dev, n * sizeof(float));
	return h;
}

static unsigned long long gpu_rng = 0x2545f4914f6cdd1dull;
static inline float urandf(void) /* uniform in [-1, 1) */
{
	gpu_rng ^= gpu_rng << 13;
	gpu_rng ^= gpu_rng >> 7;
	gpu_rng ^= gpu_rng << 17;
	return (float)((double)(gpu_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static inline float *rand_host(size_t n, float scale)
{
	float *v = xmalloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		v[i] = urandf() * scale;
	return v;
}

#endif
