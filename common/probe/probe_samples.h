/* The training samples of a probe on frozen features: a labelled features
 * stream (files, or stdin) handed out in shuffled batches, one pass over the
 * data per epoch.
 *
 * Samples are kept in the stream's dtype (F16 features stay half the size)
 * and converted to float per batch. Files are re-read every epoch through a
 * shuffle buffer of a bounded size; a stream on stdin cannot be re-read, so
 * it is held in memory once and permuted each epoch. The first pass of a
 * looping producer (aim.epoch > 0 afterwards) is the data. Samples labelled
 * −1 are counted and left out. */
#ifndef AIM_PROBE_SAMPLES_H
#define AIM_PROBE_SAMPLES_H

#include <stddef.h>
#include <stdint.h>

#include "probe_data.h"
#include "record.h"
#include "stream.h"

typedef struct {
	/* what the first pass found (read after aim_probe_samples_open) */
	int64_t K, D;           /* tokens and width of a sample */
	aim_dtype dtype;
	int64_t total;          /* labelled samples per epoch */
	int64_t max_label;
	int64_t unlabelled;     /* samples labelled −1, left out */
	int in_memory;          /* stdin: held in memory */
	int loops;              /* the stream loops: the aim.epoch (> 0) that ended the first pass */
	aim_record meta;        /* the first record's metadata (+ the last aim.classes) */

	/* private */
	aim_reader *rd;
	size_t sample_bytes;
	int have_meta;
	unsigned char *all;     /* memory mode: every sample */
	int64_t *all_labels;
	int64_t nall, capall;
	int64_t *perm, next;
	unsigned char *buf;     /* file mode: the shuffle buffer */
	int64_t *buf_labels;
	int64_t fill, cap;
	aim_record rec;
	int64_t rec_pos, rec_B;
	const int64_t *rec_labels;
	int input_done;
	uint64_t rng;
	aim_label_buf lb;
	unsigned char *raw;     /* one batch of samples in their own dtype */
	size_t rawcap;
} aim_probe_samples;

/* First pass over the inputs (NULL/0: stdin): learn the shape, classes and
 * size; hold stdin in memory; allocate a shuffle buffer of shuffle_mb MB
 * for files. AIM_OK, or AIM_ERR naming the stream and record. */
int aim_probe_samples_open(aim_probe_samples *s, const char *const *inputs, int ninputs,
			   uint64_t seed, double shuffle_mb);
/* Begin an epoch (a new permutation, or a rewind of the files). */
int aim_probe_samples_start_epoch(aim_probe_samples *s);
/* Fill x [n, K, D] (float) and y [n] with up to max samples of this epoch;
 * returns n (0 at the end of the epoch) or AIM_ERR. */
int64_t aim_probe_samples_batch(aim_probe_samples *s, float *x, int64_t *y, int64_t max);
void aim_probe_samples_close(aim_probe_samples *s);

#endif
