/* Training batches read one step ahead, on a thread of their own.
 *
 * While a step computes, the next batch is read from the stream, its zstd
 * frames decompressed and its patches converted to floats, so none of
 * that waits on the critical path (decoding the images is already in
 * another process: aim-patchify at the other end of the pipe). With a
 * device backend the two batch buffers are page-locked host memory
 * (backend host_alloc), from which uploads run at full bus speed.
 *
 * The batches are exactly those aim_source_next would give, in the same
 * order: prefetching changes when input is read, never what is trained. */
#ifndef AIM_TRAIN_PREFETCH_H
#define AIM_TRAIN_PREFETCH_H

#include <pthread.h>
#include <stdint.h>

#include "backend.h"
#include "train_data.h"

typedef struct {
	float *x;          /* [batch, K, P] */
	uint64_t *gidx;    /* global sample indices */
	int got;           /* images in it (< batch only at the end), or AIM_ERR */
	int epoch;         /* aim.epoch of the last record read, -1 if none */
	char err[1024];    /* the reader's message when got is AIM_ERR */
	int full;
	int pinned;        /* x came from the backend's host_alloc (else malloc) */
} aim_prefetch_slot;

typedef struct {
	aim_source *src;
	const aim_backend *be;
	int batch;
	aim_prefetch_slot slot[2];
	int take;          /* the slot the consumer takes next */
	int out;           /* the slot it holds now, -1 before the first */
	int started, stop, reading;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
} aim_prefetch;

/* Start reading batches of `batch` images from src (whose geometry is
 * known and which the caller no longer touches until aim_prefetch_stop). */
int aim_prefetch_start(aim_prefetch *p, aim_source *src, int batch, const aim_backend *be);
/* The next batch: images in it (fewer than batch at the end of the stream),
 * or AIM_ERR with the reader's message. *x and *gidx stay valid until the
 * next call; *epoch is the stream's aim.epoch (-1 if none). */
int aim_prefetch_next(aim_prefetch *p, const float **x, const uint64_t **gidx, int *epoch);
/* Stop the reader (cancelled if it waits on input) and free the buffers. */
void aim_prefetch_stop(aim_prefetch *p);

#endif
