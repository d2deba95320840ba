/* Patches streams: geometry and normalisation (patches.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "patches.h"

/* n numbers from JSON metadata such as "[0.485, 0.456, 0.406]". */
static int meta_floats(const aim_record *r, const char *key, float *out, int n, const char *what)
{
	const char *text = aim_record_get_meta(r, key);
	json_t *j = json_loads(text, 0, NULL);
	int ok = json_is_array(j) && (int)json_array_size(j) == n;
	for (int i = 0; ok && i < n; i++) {
		json_t *v = json_array_get(j, (size_t)i);
		ok = json_is_number(v);
		if (ok)
			out[i] = (float)json_number_value(v);
	}
	json_decref(j);
	if (!ok)
		return aim_error("%s: metadata %s=\"%s\" is not a list of %d numbers", what, key,
				 text, n);
	return 0;
}

/* A positive integer from metadata; *out is left alone when the key is
 * absent and `fallback` says absence is allowed. */
static int meta_int(const aim_record *r, const char *key, int *out, int fallback,
		    const char *what)
{
	const char *v = aim_record_get_meta(r, key);
	if (!v) {
		if (fallback)
			return 0;
		return aim_error("%s: metadata %s is missing (re-run aim-patchify: it records it)",
				 what, key);
	}
	char *end;
	long x = strtol(v, &end, 10);
	if (end == v || *end || x <= 0 || x > 1 << 20)
		return aim_error("%s: metadata %s=\"%s\" is not a positive integer", what, key, v);
	*out = (int)x;
	return 0;
}

/* aim.grid "[rows, cols]"; 1 when found, 0 when absent, AIM_ERR. */
static int meta_grid(const aim_record *r, int *rows, int *cols, const char *what)
{
	const char *gs = aim_record_get_meta(r, "aim.grid");
	if (!gs)
		return 0;
	json_t *j = json_loads(gs, 0, NULL);
	int ok = json_is_array(j) && json_array_size(j) == 2 &&
		 json_is_integer(json_array_get(j, 0)) && json_is_integer(json_array_get(j, 1));
	if (ok) {
		json_int_t a = json_integer_value(json_array_get(j, 0));
		json_int_t b = json_integer_value(json_array_get(j, 1));
		ok = a > 0 && b > 0 && a <= 1 << 15 && b <= 1 << 15;
		*rows = (int)a;
		*cols = (int)b;
	}
	json_decref(j);
	if (!ok)
		return aim_error("%s: bad aim.grid metadata \"%s\" (want [rows, cols])", what, gs);
	return 1;
}

int aim_patches_geometry(aim_geometry *g, const aim_record *r, const aim_config *model,
			 const char *what)
{
	memset(g, 0, sizeof *g);
	const aim_tensor *t = aim_record_find(r, "patches");
	if (!t)
		return aim_error("%s: no \"patches\" tensor (is this a patches stream?)", what);
	if (t->ndim != 3)
		return aim_error("%s: patches must be [B, K, P], not %d-dimensional", what, t->ndim);
	if (t->dtype != AIM_U8 && t->dtype != AIM_F32 && t->dtype != AIM_F16 && t->dtype != AIM_BF16)
		return aim_error("%s: patches of dtype %s (expected U8, F16, BF16 or F32)", what,
				 aim_dtype_name(t->dtype));
	const int64_t K = t->shape[1], P = t->shape[2];
	if (model) {
		g->patch = model->patch;
		g->channels = model->channels;
	}
	if (meta_int(r, "aim.patch", &g->patch, model != NULL, what) ||
	    meta_int(r, "aim.channels", &g->channels, model != NULL, what))
		return AIM_ERR;
	if (model && g->patch != model->patch)
		return aim_error("%s: patches of %d pixels, the model takes %d: re-run aim-patchify "
				 "with --patch %d", what, g->patch, model->patch, model->patch);
	if (model && g->channels != model->channels)
		return aim_error("%s: %d channels, the model takes %d: re-run aim-patchify with "
				 "--channels %d", what, g->channels, model->channels, model->channels);
	if (g->channels > AIM_MAX_CHANNELS)
		return aim_error("%s: %d channels (at most %d)", what, g->channels, AIM_MAX_CHANNELS);
	g->P = g->channels * g->patch * g->patch;
	if (P != g->P)
		return aim_error("%s: patch vectors of %lld values, %s %d (%d channels of %dx%d): "
				 "re-run aim-patchify with --patch %d --channels %d",
				 what, (long long)P, model ? "the model takes" : "the metadata says",
				 g->P, g->channels, g->patch, g->patch, g->patch, g->channels);
	int rc = meta_grid(r, &g->rows, &g->cols, what);
	if (rc < 0)
		return AIM_ERR;
	if (rc == 0) {
		if (!model)
			return aim_error("%s: metadata aim.grid is missing (re-run aim-patchify: it "
					 "records the grid)", what);
		g->rows = model->grid_rows;
		g->cols = model->grid_cols;
	}
	g->K = g->rows * g->cols;
	if (g->K != K)
		return aim_error("%s: a %dx%d grid does not hold the %lld patches of a sample%s", what,
				 g->rows, g->cols, (long long)K,
				 rc ? "" : " (no aim.grid metadata; the model's grid assumed)");
	if (g->K < 2 && !model)
		return aim_error("%s: a grid of %d patch cannot be trained (nothing to predict)",
				 what, g->K);
	for (int c = 0; c < g->channels; c++) {
		g->mean[c] = 0.0f;
		g->std[c] = 1.0f;
	}
	if (t->dtype == AIM_U8) {
		if (!aim_record_get_meta(r, "aim.mean") || !aim_record_get_meta(r, "aim.std"))
			return aim_error("%s: U8 patches need metadata aim.mean and aim.std (%d "
					 "values each)", what, g->channels);
		if (meta_floats(r, "aim.mean", g->mean, g->channels, what) ||
		    meta_floats(r, "aim.std", g->std, g->channels, what))
			return AIM_ERR;
		for (int c = 0; c < g->channels; c++)
			if (!(g->std[c] > 0))
				return aim_error("%s: aim.std has a non-positive value", what);
	}
	return 0;
}

void aim_patches_to_f32(float *out, const aim_tensor *t, int64_t i, const aim_geometry *g)
{
	const size_t n = (size_t)g->K * g->P;
	if (t->dtype != AIM_U8) {
		aim_convert(out, AIM_F32, (const char *)t->data + i * n * aim_dtype_size(t->dtype),
			    t->dtype, n);
		return;
	}
	const uint8_t *u = (const uint8_t *)t->data + i * n;
	const int pp = g->patch * g->patch;
	for (int k = 0; k < g->K; k++)
		for (int c = 0; c < g->channels; c++) {
			const uint8_t *a = u + (size_t)k * g->P + (size_t)c * pp;
			float *o = out + (size_t)k * g->P + (size_t)c * pp;
			const float mean = g->mean[c], std = g->std[c];
			/* torchvision: ToTensor divides by 255, Normalize subtracts
			 * and divides, each rounded to float32 */
			#pragma omp simd
			for (int j = 0; j < pp; j++)
				o[j] = ((float)a[j] / 255.0f - mean) / std;
		}
}

int aim_permute_patches(float *x, const int *order, int64_t B, int64_t K, int64_t P)
{
	float *img = malloc(sizeof(float) * (size_t)(K * P));
	if (!img)
		return aim_error("out of memory");
	for (int64_t b = 0; b < B; b++) {
		float *xb = x + (size_t)(b * K * P);
		memcpy(img, xb, sizeof(float) * (size_t)(K * P));
		for (int64_t t = 0; t < K; t++)
			memcpy(xb + t * P, img + (int64_t)order[t] * P, sizeof(float) * (size_t)P);
	}
	free(img);
	return AIM_OK;
}
