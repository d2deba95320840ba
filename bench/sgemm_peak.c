/* The fp32 GEMM ceiling of this machine with the library aim's fp32
 * products use (common/ops/gemm.h: oneDNN when built with it, -DAIM_HAVE_DNNL
 * here, unless AIM_SGEMM=openblas), measured the way the model uses it:
 * oneDNN's dnnl_sgemm on all threads, or OpenBLAS with each OpenMP thread
 * multiplying its own panel, OpenBLAS held at one thread. C[M,N] =
 * A[M,K]·B[N,K]ᵀ with the AIM-600M MLP shape (M = 512 tokens, N = 6144,
 * K = 1536) by default. Prints the best GFLOP/s of `reps` runs.
 *   sgemm_peak [threads] [reps] [M N K] */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef AIM_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

void openblas_set_num_threads(int n);

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	int nt = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 5;
	int M = argc > 5 ? atoi(argv[3]) : 512, N = argc > 5 ? atoi(argv[4]) : 6144;
	int K = argc > 5 ? atoi(argv[5]) : 1536;
	float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K);
	float *C = malloc(sizeof(float) * M * N);
	for (long i = 0; i < (long)M * K; i++)
		A[i] = (float)(i % 7) * 0.1f;
	for (long i = 0; i < (long)N * K; i++)
		B[i] = (float)(i % 5) * 0.1f;
	openblas_set_num_threads(1);
	omp_set_num_threads(nt);
	int dnnl = 0;
#ifdef AIM_HAVE_DNNL
	const char *lib = getenv("AIM_SGEMM");
	dnnl = !lib || strcmp(lib, "openblas");
#endif
	double best = 0;
	for (int r = 0; r < reps; r++) {
		double t0 = now();
#ifdef AIM_HAVE_DNNL
		if (dnnl)
			dnnl_sgemm('N', 'T', M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
#endif
		#pragma omp parallel if (!dnnl)
		{
			int t = omp_get_thread_num(), n = omp_get_num_threads();
			int chunk = (N / n + 15) / 16 * 16, a = t * chunk, b = a + chunk < N ? a + chunk : N;
			if (!dnnl && a < b)
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, b - a, K, 1.0f, A, K,
					    B + (size_t)a * K, K, 0.0f, C + a, N);
		}
		double g = 2.0 * M * N * K / (now() - t0) * 1e-9;
		best = g > best ? g : best;
	}
	printf("%.1f\n", best);
	return 0;
}
