/* A batch of listed images read, decoded, transformed (val or train) and
 * cut into patches, in parallel: aim-patchify's work on each batch. */
#ifndef AIM_IMGBATCH_H
#define AIM_IMGBATCH_H

#include <stddef.h>
#include <stdint.h>

#include "imgsrc.h"
#include "transform.h"

/* How every image of a run is prepared. */
typedef struct {
	int train;          /* 1: the train transform (aug, seed), else val */
	int size, resize;   /* crop S; val: resize R of the shorter side first */
	int patch, channels;
	int64_t max_pixels; /* decoder limit */
	aim_train_aug aug;
	uint64_t seed;
} aim_imgcut;

/* One image of a batch. */
typedef struct {
	int64_t item;
	uint8_t *data; /* tar member bytes, or NULL: read the file */
	size_t len;
	int ok;
	char err[400];
	aim_train_draw draw;
} aim_imgslot;

/* Read, decode, transform and cut the gathered images in parallel; sample
 * i lands at patches + i * sample_bytes whatever thread handles it, as
 * K patches of C*p*p bytes (channel, row, column; patches in raster order).
 * A slot that fails has ok = 0 and its reason in err; every slot's data is
 * freed. */
void aim_imgbatch_decode(const aim_imgcut *o, const aim_imglist *l, int64_t epoch,
			 aim_imgslot *slots, int count, uint8_t *patches, size_t sample_bytes);

#endif
