/* One pool of threads for OpenBLAS and OpenMP (blas_threads.h). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"

int aim_blas_hold_single(void)
{
	if (omp_in_parallel())
		return 0; /* the caller's team holds it already */
	int saved = openblas_get_num_threads();
	openblas_set_num_threads(1);
	return saved;
}

void aim_blas_release(int held)
{
	if (held > 0)
		openblas_set_num_threads(held);
}

int aim_sgemm_env_onednn(const char **complaint)
{
#ifdef AIM_HAVE_DNNL
	int onednn = 1;
#else
	int onednn = 0;
#endif
	const char *env = getenv("AIM_SGEMM"), *why = NULL;
	if (env && *env) {
		if (!strcmp(env, "openblas"))
			onednn = 0;
		else if (strcmp(env, "onednn"))
			why = "not openblas or onednn";
		else if (!onednn)
			why = "this build has no oneDNN";
	}
	if (complaint)
		*complaint = why;
	return onednn;
}
