/* The shape of a new pretraining run: aim-train's presets (small CPU
 * shapes beside the published ones), then the flags given by hand, and the
 * check that a patches stream fits a model. */
#ifndef AIM_TRAIN_SHAPE_H
#define AIM_TRAIN_SHAPE_H

#include "model.h"
#include "patches.h"
#include "train_variant.h"

typedef struct {
	const char *name;
	int img, patch, channels, dim, depth, heads, head_blocks, head_dim;
} aim_train_preset;

/* fmnist, vit-s, aim-600M, aim-1B, aim-3B, aim-7B (any case); NULL for
 * another name. */
const aim_train_preset *aim_train_preset_find(const char *name);

/* What a run asks for: a preset and/or the flags (0, or head_blocks -1:
 * not given; arch "aimv2" makes an AIMv2-family trunk). */
typedef struct {
	const char *preset, *arch;
	int dim, depth, heads, head_blocks, head_dim;
	double mlp_ratio;
	aim_head_kind head;
} aim_train_shape;

/* The trunk's config and the pixel head's blocks and width: the preset,
 * then the flags; the geometry from the preset when it fixes one (the
 * stream must then match it), else from the stream g. */
int aim_train_new_config(const aim_train_shape *s, const aim_geometry *g, aim_config *c,
			 int *head_blocks, int *head_dim);

/* AIM_ERR unless the stream's patches fit the model (`what`): same patch,
 * channels and grid. */
int aim_train_check_fit(const aim_config *c, const aim_geometry *g, const char *what);

#endif
