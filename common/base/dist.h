/* Data-parallel training across processes.
 *
 * Two implementations of one interface: dist_single.c (always in
 * libaim.a) is one process alone, and dist_mpi.c (built only when mpicc is
 * found, linked into the tools ahead of libaim.a) talks MPI. The
 * single-process functions are weak symbols so the MPI ones win whenever
 * both are linked; a tool never needs an #ifdef.
 *
 * Under mpirun every rank runs the same program; rank 0 alone writes
 * files. A process started without mpirun is rank 0 of 1 even in an MPI
 * build (MPI is initialised only when a launcher set up the job). */
#ifndef AIM_DIST_H
#define AIM_DIST_H

/* Initialise; returns AIM_ERR with a message on failure. */
int aim_dist_init(int *argc, char ***argv);
int aim_dist_rank(void);
int aim_dist_size(void);
/* "MPI (Open MPI ...)" or "single process": for --version and logs. */
const char *aim_dist_name(void);
/* Sum x[0..n) over all ranks, result on every rank (in place). The order
 * of the sum is fixed by the library for a given number of ranks. */
int aim_dist_allreduce_f32(float *x, long n);
int aim_dist_allreduce_f64(double *x, long n);
/* Rank 0's x[0..n) to every rank. */
int aim_dist_bcast_f32(float *x, long n);
int aim_dist_barrier(void);

/* The ranks that share this machine (MPI_COMM_TYPE_SHARED): multi-GPU
 * training gives local rank i GPU i, sums gradients among a node's ranks
 * on the GPUs (NCCL), and only between nodes over MPI. */
int aim_dist_local_rank(void);
int aim_dist_local_size(void);
int aim_dist_nodes(void);
/* Local rank 0's n bytes to every rank of the node. */
int aim_dist_bcast_local(void *x, long n);
/* Sum x[0..n) over the local rank 0 of every node (call it there only). */
int aim_dist_allreduce_leaders_f32(float *x, long n);
/* Finish cleanly (every rank). */
void aim_dist_finalize(void);
/* End every rank of the job after a fatal error on this one. */
_Noreturn void aim_dist_abort(int code);

#endif
