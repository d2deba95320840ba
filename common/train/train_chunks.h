/* How hard each part of the sequence is (the AIM paper's Figure 7), as a
 * training run records it: RUNDIR/chunks.csv, one row per validation
 * (step, then the validation loss of each of N equal parts of the sequence
 * in prediction order, aim_trainer_eval_chunks), and RUNDIR/chunks.png,
 * those losses against the part, one line for the first validation and
 * one for each of the latest. Both are rewritten whole (atomically) at
 * every validation; a resumed run keeps the rows up to its step. */
#ifndef AIM_TRAIN_CHUNKS_H
#define AIM_TRAIN_CHUNKS_H

typedef struct {
	char *dir;
	int nchunks;
	long n, cap;
	long *step;
	double *loss; /* [n, nchunks] */
} aim_chunklog;

/* A new log (keep_upto < 0) or the rows of RUNDIR/chunks.csv up to step
 * keep_upto with this many chunks (rows of another width are dropped). */
int aim_chunklog_open(aim_chunklog *l, const char *rundir, int nchunks, long keep_upto);
/* One validation's chunk losses; rewrites chunks.csv and chunks.png. */
int aim_chunklog_add(aim_chunklog *l, long step, const double *loss);
void aim_chunklog_free(aim_chunklog *l);

#endif
