/* The evaluation and training transforms of aim-patchify.
 *
 * val:   torchvision's CenterCrop(S)(Resize(R, BICUBIC)(img)) on a PIL
 *        image, pixel for pixel: the shorter side becomes R and the longer
 *        int(R * long / short) (Python's true division, then truncation);
 *        the crop starts at round((n - S) / 2.0) (round half to even), and
 *        a side shorter than S is first padded with zeros, (S-n)//2 before
 *        and the rest after, as CenterCrop does.
 * train: RandomResizedCrop(S, scale, ratio, BICUBIC) — or, with a
 *        translation, RandomCrop(S, padding=N, pad_if_needed=True): an
 *        S x S window of the image padded with N zeros on every side, no
 *        resampling — then a horizontal
 *        flip with probability 1/2, and an optional colour jitter. The
 *        crop is chosen with torchvision's algorithm (ten tries of a random
 *        area and log-uniform aspect ratio, then the central fallback) but
 *        from our own counter-based generator keyed by (seed, epoch, id),
 *        so a sample's augmentation never depends on thread count, batch
 *        size or order. */
#ifndef AIM_TRANSFORM_H
#define AIM_TRANSFORM_H

#include <stdint.h>

#include "image.h"

/* A family's published preprocessing (aim-patchify --preset NAME): crop
 * size, whether the resize equals the crop (crop fraction 1, AIMv2) rather
 * than ceil(S / 0.875) (AIM v1), mean and std. */
typedef struct {
	const char *name;
	int size, full; /* full: crop fraction 1 */
	double mean[3], std[3];
} aim_preset;

/* aim-v1, aimv2-224, aimv2-336, aimv2-448; NULL for another name. */
const aim_preset *aim_preset_find(const char *name);

/* ceil(S / 0.875): the resize used before a centre crop of S. */
int aim_val_resize_for(int size);

/* Size (ow, oh) of torchvision's Resize(R) of a w x h image; AIM_ERR if
 * the longer side would pass 2^30. */
int aim_val_resized_size(int w, int h, int R, int *ow, int *oh);

/* Resize the shorter side to R, centre-crop S x S into out (S*S*c bytes). */
int aim_transform_val(const aim_image *in, int S, int R, uint8_t *out);

typedef struct {
	double scale_lo, scale_hi; /* fraction of the area (0.4, 1.0) */
	double ratio_lo, ratio_hi; /* aspect ratio w/h (3/4, 4/3) */
	int translate;             /* -1: the resized crop; N >= 0: RandomCrop(S, padding=N) */
	int flip;                  /* 1: random horizontal flip */
	double brightness, contrast, saturation; /* jitter strengths, 0 = off */
} aim_train_aug;

void aim_train_aug_default(aim_train_aug *a);

/* The augmentation drawn for one sample, for logging and testing. */
typedef struct {
	int top, left, h, w; /* crop box in the decoded image (with a translation it
			      * may reach past the edges: zeros there) */
	int flip;
	double brightness, contrast, saturation; /* factors (1 = unchanged) */
	int jitter_order[3]; /* order of the three jitters: 0 b, 1 c, 2 s */
} aim_train_draw;

/* Draw the augmentation of sample `id` in `epoch` for a w x h image and an
 * output of S x S. */
void aim_train_draw_params(const aim_train_aug *a, uint64_t seed, int64_t epoch, int64_t id,
			   int w, int h, int S, aim_train_draw *d);

/* Apply a drawn augmentation: crop (zeros outside the image), resize to
 * S x S (a copy when the box is S x S already, as Pillow's resize),
 * flip, jitter. */
int aim_transform_train(const aim_image *in, int S, const aim_train_draw *d, uint8_t *out);

#endif
