/* Patches streams: the geometry a record declares, and its samples as the
 * floats a trunk takes.
 *
 * One place for what aim-train, aim-extract, aim-probe -m and aim-eval -m
 * must agree on: which metadata a patches record needs (aim.patch,
 * aim.channels, aim.grid; aim.mean / aim.std for U8), how it is checked
 * against a model, and the normalisation of U8 pixels — exactly
 * torchvision's ToTensor + Normalize in float32, (u/255 − mean) / std, so
 * features do not depend on which tool computed them. */
#ifndef AIM_PATCHES_H
#define AIM_PATCHES_H

#include <stdint.h>

#include "model.h"
#include "record.h"

#define AIM_MAX_CHANNELS 16

typedef struct {
	int patch;        /* p */
	int rows, cols;   /* grid in patches */
	int channels;     /* C */
	int K, P;         /* rows·cols patches of C·p·p values */
	float mean[AIM_MAX_CHANNELS], std[AIM_MAX_CHANNELS]; /* U8 only; else 0 / 1 */
} aim_geometry;

/* The geometry of a patches record ("patches" [B, K, P] of U8, F16, BF16
 * or F32). With a model config, what the stream's metadata leaves out
 * (aim.patch, aim.channels, aim.grid) is taken from the model, and what it
 * says must agree with the model (errors say how to re-run aim-patchify);
 * without one (training from scratch) the metadata must be complete. */
int aim_patches_geometry(aim_geometry *g, const aim_record *r, const aim_config *model,
			 const char *what);

/* Sample i of a patches tensor of geometry g as floats [K, P]. */
void aim_patches_to_f32(float *out, const aim_tensor *t, int64_t i, const aim_geometry *g);
/* x [B, K, P] in place into a sequence order: patch t of each image
 * becomes the one at place order[t]. AIM_ERR when out of memory. */
int aim_permute_patches(float *x, const int *order, int64_t B, int64_t K, int64_t P);

#endif
