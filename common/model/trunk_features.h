/* Features of a frozen trunk computed on the fly from a patches record, for
 * the tools that take -m MODEL with a patches stream (aim-probe, aim-eval):
 * the average of the chosen blocks' outputs [B, K, D], as the published
 * AIM v1 AverageLayers hands them to the probe head (no post-trunk norm);
 * for the AIMv2 family, the post-trunk RMSNorm of that average (with the
 * default layers, the last block: what the published encoder returns and
 * its probes read). U8 patches are normalised with the record's aim.mean / aim.std. */
#ifndef AIM_TRUNK_FEATURES_H
#define AIM_TRUNK_FEATURES_H

#include <stdint.h>

#include "model.h"
#include "patches.h"
#include "record.h"

typedef struct {
	aim_model *m;
	int layers[AIM_MAX_BLOCKS], nl;
	int post_norm;            /* the family's: AIMv2 1, AIM v1 0 */
	unsigned char keep[AIM_MAX_BLOCKS];
	float *x, *feat;
	size_t xcap, fcap;
	/* a device backend: patches and the average in its memory */
	float *dx, *dfeat;
	size_t dxcap, dfcap;
	/* The mask (AIM_MASK_NONE unless the caller sets AIM_MASK_CAUSAL) and,
	 * with it, the order the model was pretrained in ([order_rows ·
	 * order_cols], NULL: raster): the patches are permuted into it and the
	 * features come in it, token t the patch of place order[t]. The order
	 * is malloc'd; aim_trunk_features_free frees it. */
	aim_mask_kind mask;
	int *order;
	int order_rows, order_cols;
} aim_trunk_features;

/* layers: NULL (the model's probe layers), "last" (last 6), "best" (the
 * published best 6), "all", or a list such as "3", "0,4", "12-17".
 * Errors (AIM_ERR) say what is wrong with the list. */
int aim_trunk_features_init(aim_trunk_features *t, aim_model *m, const char *layers);
/* Run the trunk on the record's "patches" [B, K, P]; *feat points to
 * [B, K, D] floats owned by t (valid until the next call). */
int aim_trunk_features_run(aim_trunk_features *t, const aim_record *r, const char *what,
			   const float **feat, int64_t *B, int64_t *K);
/* The record's "patches" as F32 [B, K, P] on the host (U8 normalised);
 * *x owned by t, valid until the next call. */
int aim_trunk_patches(aim_trunk_features *t, const aim_record *r, const char *what,
		      const float **x, int64_t *B, aim_geometry *g);
/* The layers as JSON text ("[18,19,20,21,22,23]") into buf. */
const char *aim_trunk_features_layers_json(const aim_trunk_features *t, char *buf, size_t n);
void aim_trunk_features_free(aim_trunk_features *t);

#endif
