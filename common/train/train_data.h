/* Training samples from a patches stream, one image at a time.
 *
 * Every image of the stream has a global index g (0, 1, 2, ... in stream
 * order, over all inputs). With `world` processes, rank r keeps the images
 * with g % world == r (the --shard rule), so at step t the ranks together
 * see exactly the images one process would see with world times the
 * batch. U8 patches are normalised as (u8/255 − mean[c]) / std[c] with the
 * stream's aim.mean / aim.std; F16/BF16/F32 patches are taken as they are.
 * The geometry (patch size, grid, channels) comes from the first record;
 * every later record must agree. */
#ifndef AIM_TRAIN_DATA_H
#define AIM_TRAIN_DATA_H

#include <stdint.h>

#include "patches.h"
#include "record.h"
#include "stream.h"

typedef struct {
	aim_reader *rd;
	aim_record rec;
	int64_t rec_b, rec_i;  /* images in the current record, next one */
	uint64_t next_g;       /* global index of the next image */
	int rank, world;
	int have_geom;
	aim_geometry geom;
	int epoch;             /* aim.epoch of the current record, -1 if none */
	char what[512];
} aim_source;

int aim_source_open(aim_source *s, const char *const *paths, int npaths, int rank, int world);
void aim_source_close(aim_source *s);
/* Read the first record (if not yet read) and fill s->geom. 0 at an empty
 * stream, 1 when known, AIM_ERR. */
int aim_source_geometry(aim_source *s);
/* Skip images until the global index reaches g (for a resumed run).
 * Returns 1, 0 if the stream ended first, AIM_ERR. */
int aim_source_skip_to(aim_source *s, uint64_t g);
/* Up to n images of this rank into x [n, K, P] with their global indices;
 * returns how many (fewer only at the end of the stream), AIM_ERR. */
int aim_source_next(aim_source *s, float *x, uint64_t *gidx, int n);

/* A whole validation stream (path) in memory as floats, its n images of the
 * training stream's geometry g; NULL on error. */
float *aim_train_read_val(const char *path, const aim_geometry *g, int *n);

#endif
