/* safetensors files on disk: read through mmap, write atomically. */
#ifndef AIM_SAFETENSORS_H
#define AIM_SAFETENSORS_H

#include "record.h"

typedef struct {
	aim_record rec;   /* tensors point into the mapping */
	void *map;
	size_t maplen;
} aim_stfile;

/* Map and validate a safetensors file. Errors name the path. */
int aim_st_open(aim_stfile *f, const char *path);
void aim_st_close(aim_stfile *f);

/* Write a record as a safetensors file: temporary file in the same
 * directory, fsync, rename. A file under its final name is complete. */
int aim_st_write(const char *path, const aim_record *r);

#endif
