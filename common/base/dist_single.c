/* One process alone: the data-parallel interface of dist.h without MPI.
 * Weak, so that dist_mpi.o's definitions replace these when linked. */
#include <stdlib.h>

#include "dist.h"
#include "err.h"

#define WEAK __attribute__((weak))

WEAK int aim_dist_init(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Started as one of several processes by a launcher, a build without
	 * MPI would train n independent copies into the same directory. */
	static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
		const char *v = getenv(vars[i]);
		if (v && atoi(v) > 1)
			return aim_error("started as one of %s processes, but built without MPI "
					 "(install an MPI with mpicc and rebuild)", v);
	}
	return 0;
}

WEAK int aim_dist_rank(void) { return 0; }
WEAK int aim_dist_size(void) { return 1; }
WEAK const char *aim_dist_name(void) { return "single process (built without MPI)"; }

WEAK int aim_dist_allreduce_f32(float *x, long n)
{
	(void)x;
	(void)n;
	return 0;
}

WEAK int aim_dist_allreduce_f64(double *x, long n)
{
	(void)x;
	(void)n;
	return 0;
}

WEAK int aim_dist_bcast_f32(float *x, long n)
{
	(void)x;
	(void)n;
	return 0;
}

WEAK int aim_dist_barrier(void) { return 0; }
WEAK int aim_dist_local_rank(void) { return 0; }
WEAK int aim_dist_local_size(void) { return 1; }
WEAK int aim_dist_nodes(void) { return 1; }

WEAK int aim_dist_bcast_local(void *x, long n)
{
	(void)x;
	(void)n;
	return 0;
}

WEAK int aim_dist_allreduce_leaders_f32(float *x, long n)
{
	(void)x;
	(void)n;
	return 0;
}
WEAK void aim_dist_finalize(void) {}
WEAK _Noreturn void aim_dist_abort(int code) { exit(code); }
