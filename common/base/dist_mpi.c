/* Data-parallel interface of dist.h over MPI. Compiled only when mpicc is
 * found (the Makefile adds its flags and links this object ahead of
 * libaim.a, so these definitions replace the weak ones of dist_single.c). */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "dist.h"
#include "err.h"

static int active, rank, size = 1;
static int local_rank, local_size = 1, nodes = 1;
static MPI_Comm node_comm = MPI_COMM_NULL, leaders_comm = MPI_COMM_NULL;
static char name[MPI_MAX_LIBRARY_VERSION_STRING + 16];

/* A job started by a launcher leaves its mark in the environment; without
 * one we stay a single process and never touch MPI (no singleton start-up
 * cost, and the tool works where no MPI runtime is configured). */
static int under_launcher(void)
{
	static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
				     "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS"};
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
		if (getenv(vars[i]))
			return 1;
	return 0;
}

int aim_dist_init(int *argc, char ***argv)
{
	if (!under_launcher())
		return 0;
	if (MPI_Init(argc, argv) != MPI_SUCCESS)
		return aim_error("MPI_Init failed");
	active = 1;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	/* The ranks of this node, and one communicator of every node's
	 * local rank 0 (the others get MPI_COMM_NULL). */
	if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL,
				&node_comm) != MPI_SUCCESS)
		return aim_error("MPI_Comm_split_type failed");
	MPI_Comm_rank(node_comm, &local_rank);
	MPI_Comm_size(node_comm, &local_size);
	if (MPI_Comm_split(MPI_COMM_WORLD, local_rank == 0 ? 0 : MPI_UNDEFINED, rank,
			   &leaders_comm) != MPI_SUCCESS)
		return aim_error("MPI_Comm_split failed");
	int leader = local_rank == 0;
	if (MPI_Allreduce(&leader, &nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
		return aim_error("MPI_Allreduce failed");
	return 0;
}

int aim_dist_local_rank(void) { return local_rank; }
int aim_dist_local_size(void) { return local_size; }
int aim_dist_nodes(void) { return nodes; }

int aim_dist_bcast_local(void *x, long n)
{
	if (!active || local_size == 1)
		return 0;
	if (n > INT_MAX || MPI_Bcast(x, (int)n, MPI_BYTE, 0, node_comm) != MPI_SUCCESS)
		return aim_error("MPI_Bcast within the node failed");
	return 0;
}

int aim_dist_rank(void) { return rank; }
int aim_dist_size(void) { return size; }

const char *aim_dist_name(void)
{
	char lib[MPI_MAX_LIBRARY_VERSION_STRING];
	int len = 0;
	MPI_Get_library_version(lib, &len);
	for (int i = 0; i < len; i++)
		if (lib[i] == ',' || lib[i] == '\n') {
			lib[i] = 0;
			break;
		}
	snprintf(name, sizeof name, "MPI (%s)", lib);
	return name;
}

/* MPI counts are int: large buffers go in pieces. */
static int allreduce(MPI_Comm comm, void *x, long n, MPI_Datatype type, size_t elsize)
{
	char *p = x;
	while (n > 0) {
		int c = n > INT_MAX / 2 ? INT_MAX / 2 : (int)n;
		if (MPI_Allreduce(MPI_IN_PLACE, p, c, type, MPI_SUM, comm) != MPI_SUCCESS)
			return aim_error("MPI_Allreduce failed");
		p += (size_t)c * elsize;
		n -= c;
	}
	return 0;
}

int aim_dist_allreduce_f32(float *x, long n)
{
	return !active || size == 1 ? 0 : allreduce(MPI_COMM_WORLD, x, n, MPI_FLOAT, sizeof *x);
}

int aim_dist_allreduce_f64(double *x, long n)
{
	return !active || size == 1 ? 0 : allreduce(MPI_COMM_WORLD, x, n, MPI_DOUBLE, sizeof *x);
}

int aim_dist_allreduce_leaders_f32(float *x, long n)
{
	if (!active || nodes == 1 || leaders_comm == MPI_COMM_NULL)
		return 0;
	return allreduce(leaders_comm, x, n, MPI_FLOAT, sizeof *x);
}

int aim_dist_bcast_f32(float *x, long n)
{
	if (!active || size == 1)
		return 0;
	while (n > 0) {
		int c = n > INT_MAX / 2 ? INT_MAX / 2 : (int)n;
		if (MPI_Bcast(x, c, MPI_FLOAT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
			return aim_error("MPI_Bcast failed");
		x += c;
		n -= c;
	}
	return 0;
}

int aim_dist_barrier(void)
{
	if (active && MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS)
		return aim_error("MPI_Barrier failed");
	return 0;
}

void aim_dist_finalize(void)
{
	if (active) {
		if (leaders_comm != MPI_COMM_NULL)
			MPI_Comm_free(&leaders_comm);
		if (node_comm != MPI_COMM_NULL)
			MPI_Comm_free(&node_comm);
		MPI_Finalize();
	}
	active = 0;
}

_Noreturn void aim_dist_abort(int code)
{
	if (active)
		MPI_Abort(MPI_COMM_WORLD, code);
	exit(code);
}
