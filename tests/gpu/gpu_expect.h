/* The comparisons of the GPU tests: a relative error against a host
 * reference, counted and printed; shared by test_backend_ops.c and
 * test_train_gpu.c (not by the benchmark, which checks nothing). */
#ifndef AIM_GPU_EXPECT_H
#define AIM_GPU_EXPECT_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpu_common.h"

static int verbose, failures, checks;

/* max |got − want| / max |want| over n values; NaN anywhere fails. */
static void expect(const char *what, const float *got, const float *want, size_t n, double tol)
{
	double ref = 1e-30, err = 0;
	size_t at = 0;
	for (size_t i = 0; i < n; i++)
		ref = fmax(ref, fabs(want[i]));
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)got[i] - want[i]);
		if (!(e <= err)) {
			err = isnan(e) ? INFINITY : e;
			at = i;
		}
	}
	double rel = err / ref;
	int ok = rel <= tol;
	checks++;
	failures += !ok;
	if (!ok || verbose)
		printf("%-4s %-52s rel err %.2e (tol %.0e)%s\n", ok ? "ok" : "FAIL", what, rel, tol,
		       ok ? "" : " <-");
	if (!ok && n)
		printf("     worst at [%zu]: got %.8g want %.8g\n", at, got[at], want[at]);
}

/* Compare a device buffer with a host reference. */
static void expect_dev(const char *what, const float *dev, const float *want, size_t n, double tol)
{
	float *got = from_gpu(dev, n);
	expect(what, got, want, n, tol);
	free(got);
}

#endif
