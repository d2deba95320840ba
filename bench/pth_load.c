/* Seconds aim_pth_load takes on each checkpoint given (best of 3). */
#include <stdio.h>
#include <time.h>

#include "err.h"
#include "pth.h"

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		double best = 1e30;
		int n = 0;
		for (int rep = 0; rep < 3; rep++) {
			aim_record r;
			aim_record_init(&r);
			struct timespec a, b;
			clock_gettime(CLOCK_MONOTONIC, &a);
			if (aim_pth_load(argv[i], &r)) {
				fprintf(stderr, "%s\n", aim_errmsg());
				return 1;
			}
			clock_gettime(CLOCK_MONOTONIC, &b);
			double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
			best = s < best ? s : best;
			n = r.n;
			aim_record_free(&r);
		}
		printf("%s %d %.4f\n", argv[i], n, best);
	}
	return 0;
}
