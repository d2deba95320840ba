/* One pool of threads for OpenBLAS and OpenMP (blas_threads.h). */
#include <omp.h>

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
