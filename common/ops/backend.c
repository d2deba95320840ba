/* Choosing the backend: the one place that knows a CUDA build may exist. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "backend.h"
#include "cli.h"
#include "dist.h"
#include "dnnl_gemm.h"
#include "gemm.h"
#include "err.h"
#include "ops_bf16.h"

#define CUDA_LIB "libaim-cuda.so"

/* device < 0: the library's default (AIM_CUDA_DEVICE, else 0). */
static const aim_backend *try_cuda_at(const char *path, int device, char *why, size_t n)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(why, n, "%s", dlerror());
		return NULL;
	}
	const aim_backend *be = NULL;
	if (device < 0) {
		const aim_backend *(*get)(void);
		*(void **)&get = dlsym(h, "aim_backend_cuda");
		if (!get) {
			snprintf(why, n, "%s: no aim_backend_cuda symbol", path);
			return NULL;
		}
		be = get();
	} else {
		const aim_backend *(*get_dev)(int);
		*(void **)&get_dev = dlsym(h, "aim_backend_cuda_device");
		if (!get_dev) {
			snprintf(why, n, "%s: no aim_backend_cuda_device symbol", path);
			return NULL;
		}
		be = get_dev(device);
	}
	if (!be) {
		/* the library says why (driver too old, architecture, ...) */
		const char *(*reason)(void);
		*(void **)&reason = dlsym(h, "aim_cuda_unavailable");
		const char *r = reason ? reason() : NULL;
		snprintf(why, n, "%s", r && *r ? r : "no usable CUDA device");
		return NULL;
	}
	if (be->abi != AIM_BACKEND_ABI) {
		snprintf(why, n, "%s: backend ABI %d, expected %d", path, be->abi, AIM_BACKEND_ABI);
		return NULL;
	}
	return be;
}

static const aim_backend *load_cuda(int device, char *why, size_t n)
{
	const char *env = getenv("AIM_CUDA_LIB");
	if (env && *env)
		return try_cuda_at(env, device, why, n);
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (len > 0) {
		exe[len] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			const char *rel[] = {"/../lib/aim/" CUDA_LIB, "/../" CUDA_LIB};
			for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
				char path[PATH_MAX + 32];
				snprintf(path, sizeof path, "%s%s", exe, rel[i]);
				if (access(path, R_OK) == 0)
					return try_cuda_at(path, device, why, n);
			}
		}
	}
	return try_cuda_at(CUDA_LIB, device, why, n);
}

const aim_backend *aim_backend_select(const char *device)
{
	char why[512] = "";
	if (device && strcmp(device, "cpu") == 0)
		return aim_backend_cpu();
	if (!device || strcmp(device, "auto") == 0) {
		const aim_backend *be = load_cuda(-1, why, sizeof why);
		return be ? be : aim_backend_cpu();
	}
	int index = -1;
	if (strncmp(device, "cuda:", 5) == 0) {
		char *end;
		long v = strtol(device + 5, &end, 10);
		if (end == device + 5 || *end || v < 0 || v > 1023) {
			aim_error("bad device '%s' (expected cuda:N with N a GPU index)", device);
			return NULL;
		}
		index = (int)v;
	}
	if (strcmp(device, "cuda") == 0 || index >= 0) {
		const aim_backend *be = load_cuda(index, why, sizeof why);
		if (!be)
			aim_error("CUDA backend unavailable: %s", why);
		return be;
	}
	aim_error("unknown device '%s' (expected cpu, cuda, cuda:N or auto)", device);
	return NULL;
}

int aim_backend_set_precision(const aim_backend *be, const char *precision)
{
	if (!precision)
		return 0;
	if (strcmp(precision, "fp32") && strcmp(precision, "bf16") && strcmp(precision, "tf32"))
		return aim_error("unknown precision '%s' (expected fp32, tf32 or bf16)", precision);
	if (be->set_precision && be->set_precision(precision) == 0)
		return 0;
	if (be == aim_backend_cpu() && !strcmp(precision, "bf16"))
		return aim_error("the cpu backend does not offer bf16 matrix products: %s",
				 aim_bf16_unavailable());
	return aim_error("the %s backend does not offer %s matrix products%s", be->name, precision,
			 be == aim_backend_cpu() ? " (the CPU offers fp32 and bf16)" : "");
}

char *openblas_get_config(void);

/* For --version: every backend and whether it can run here. Loading the
 * CUDA library starts its device, so it happens only when asked. */
const char *aim_backend_describe(void)
{
	static char line[1024];
	char why[512] = "", blas[64];
	/* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": name and version */
	snprintf(blas, sizeof blas, "%s", openblas_get_config());
	char *sp = strchr(blas, ' ');
	if (sp && (sp = strchr(sp + 1, ' ')))
		*sp = 0;
	/* oneDNN: its version and the kernel a bf16 product gets here */
	char dnnl[160] = "";
	if (aim_dnnl_available()) {
		const char *k = aim_dnnl_bf16_kernel();
		snprintf(dnnl, sizeof dnnl, ", %s ISA %s, bf16 %s", aim_dnnl_version(),
			 aim_dnnl_isa(), aim_bf16_unavailable() ? "emulated" : k ? k : "native");
	}
	const aim_backend *cuda = load_cuda(-1, why, sizeof why);
	snprintf(line, sizeof line, "cpu (%s%s, fp32 GEMM %s, %d threads); cuda: %s", blas, dnnl,
		 aim_sgemm_library_name(), omp_get_max_threads(),
		 cuda ? (cuda->describe ? cuda->describe() : "available") : why);
	return line;
}

/* The syntax of a device name, apart from whether it can be loaded. */
static int device_name_ok(const char *d)
{
	if (!strcmp(d, "cpu") || !strcmp(d, "auto") || !strcmp(d, "cuda"))
		return 1;
	if (strncmp(d, "cuda:", 5))
		return 0;
	char *end;
	long v = strtol(d + 5, &end, 10);
	return end != d + 5 && !*end && v >= 0 && v <= 1023 && d[5] != '-' && d[5] != '+';
}

const char *aim_opt_device(const char *arg)
{
	if (!device_name_ok(arg))
		aim_usage_error("--device: '%s' is not cpu, cuda, cuda:N or auto", arg);
	return arg;
}

const char *aim_opt_precision(const char *arg)
{
	if (strcmp(arg, "fp32") && strcmp(arg, "tf32") && strcmp(arg, "bf16"))
		aim_usage_error("--precision: '%s' is not fp32, tf32 or bf16", arg);
	return arg;
}

const char *aim_backend_line(const aim_backend *be)
{
	static char line[700];
	snprintf(line, sizeof line, "%s (%s)", be->name,
		 be->describe ? be->describe() : "no description");
	return line;
}

const aim_backend *aim_backend_for_rank(const char *dev)
{
	int shared = aim_dist_local_size() > 1;
	if (shared && (!strcmp(dev, "cuda") || !strcmp(dev, "auto"))) {
		char name[32];
		snprintf(name, sizeof name, "cuda:%d", aim_dist_local_rank());
		const aim_backend *be = aim_backend_select(name);
		if (be || !strcmp(dev, "cuda"))
			return be;
		aim_error_clear();
		return aim_backend_cpu(); /* auto: no GPU for this rank */
	}
	return aim_backend_select(dev);
}
