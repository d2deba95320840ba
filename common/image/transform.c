/* val and train transforms (see transform.h). */
#include "transform.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "resample.h"

int aim_val_resize_for(int size)
{
	return (8 * size + 6) / 7; /* ceil(size / 0.875), exactly */
}

int aim_val_resized_size(int w, int h, int R, int *ow, int *oh)
{
	int shorter = w <= h ? w : h, longer = w <= h ? h : w;
	/* Python: int(R * long / short): exact product, correctly rounded
	 * quotient (exact in double for any image size), truncated */
	double q = (double)((int64_t)R * longer) / shorter;
	if (q >= (double)(1 << 30))
		return aim_error("%dx%d resized to %d on its shorter side is too large", w, h, R);
	int new_long = (int)q;
	if (w <= h) {
		*ow = R;
		*oh = new_long;
	} else {
		*ow = new_long;
		*oh = R;
	}
	return AIM_OK;
}

/* Offset of CenterCrop's window along one side of length n: negative when
 * the side is padded first. Python's round() rounds half to even, as rint
 * does in the default rounding mode. */
static int center_offset(int n, int S)
{
	if (S > n)
		return -((S - n) / 2);
	return (int)rint((n - S) / 2.0);
}

int aim_transform_val(const aim_image *in, int S, int R, uint8_t *out)
{
	int c = in->c, ow = 0, oh = 0;
	if (aim_val_resized_size(in->w, in->h, R, &ow, &oh) < 0)
		return AIM_ERR;
	int ox = center_offset(ow, S), oy = center_offset(oh, S);
	/* The part of the S x S window that lies inside the resized image. */
	int x0 = ox > 0 ? ox : 0, y0 = oy > 0 ? oy : 0;
	int x1 = ox + S < ow ? ox + S : ow, y1 = oy + S < oh ? oy + S : oh;
	size_t stride = (size_t)in->w * c;
	if (x0 == ox && y0 == oy && x1 - x0 == S && y1 - y0 == S)
		return aim_resize_bicubic(in->px, in->w, in->h, stride, c, ow, oh, x0, y0, S, S,
					  out);
	/* Padded: resize the inner part, place it in a field of zeros. */
	int cw = x1 - x0, ch = y1 - y0;
	uint8_t *tmp = malloc((size_t)cw * ch * c + 1);
	if (!tmp)
		return aim_error("out of memory");
	int rc = aim_resize_bicubic(in->px, in->w, in->h, stride, c, ow, oh, x0, y0, cw, ch, tmp);
	if (rc == AIM_OK) {
		memset(out, 0, (size_t)S * S * c);
		for (int y = 0; y < ch; y++)
			memcpy(out + ((size_t)(y + y0 - oy) * S + (x0 - ox)) * c,
			       tmp + (size_t)y * cw * c, (size_t)cw * c);
	}
	free(tmp);
	return rc;
}

/* ---- train ---------------------------------------------------------------- */

void aim_train_aug_default(aim_train_aug *a)
{
	memset(a, 0, sizeof *a);
	a->scale_lo = 0.4;
	a->scale_hi = 1.0;
	a->ratio_lo = 3.0 / 4.0;
	a->ratio_hi = 4.0 / 3.0;
	a->translate = -1;
	a->flip = 1;
}

/* Counter-based draws: word k of sample (seed, epoch, id). */
typedef struct {
	uint64_t key;
	uint64_t k;
} draw_rng;

static uint64_t mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static uint64_t rng_next(draw_rng *r)
{
	return mix64(r->key ^ mix64(r->k++));
}

static double rng_uniform(draw_rng *r, double lo, double hi)
{
	double u = (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
	return lo + (hi - lo) * u;
}

/* Uniform integer in [0, n). */
static int rng_below(draw_rng *r, int n)
{
	return (int)(((unsigned __int128)rng_next(r) * (unsigned)n) >> 64);
}

/* RandomCrop(S, padding=N, pad_if_needed=True) along one side of length n:
 * the padded side is n + 2N, grown by twice its shortfall when still under
 * S (pad_if_needed pads both ends by S - n'); the window starts uniformly
 * in it. Returned in the image's coordinates: negative inside the padding. */
static int translate_offset(draw_rng *r, int n, int N, int S)
{
	int64_t padded = (int64_t)n + 2 * (int64_t)N, extra = padded < S ? S - padded : 0;
	padded += 2 * extra;
	return (int)((int64_t)rng_below(r, (int)(padded - S + 1)) - N - extra);
}

/* The flip and the colour jitter, drawn after the crop. */
static void draw_jitter(const aim_train_aug *a, draw_rng *r, aim_train_draw *d)
{
	d->flip = a->flip && rng_uniform(r, 0, 1) < 0.5;
	d->brightness = a->brightness > 0
		? rng_uniform(r, fmax(0, 1 - a->brightness), 1 + a->brightness) : 1;
	d->contrast = a->contrast > 0
		? rng_uniform(r, fmax(0, 1 - a->contrast), 1 + a->contrast) : 1;
	d->saturation = a->saturation > 0
		? rng_uniform(r, fmax(0, 1 - a->saturation), 1 + a->saturation) : 1;
	for (int i = 0; i < 3; i++)
		d->jitter_order[i] = i;
	for (int i = 2; i > 0; i--) {
		int j = rng_below(r, i + 1), t = d->jitter_order[i];
		d->jitter_order[i] = d->jitter_order[j];
		d->jitter_order[j] = t;
	}
}

void aim_train_draw_params(const aim_train_aug *a, uint64_t seed, int64_t epoch, int64_t id,
			   int width, int height, int S, aim_train_draw *d)
{
	draw_rng r = {mix64(mix64(mix64(seed) ^ (uint64_t)epoch) ^ (uint64_t)id), 0};
	memset(d, 0, sizeof *d);
	if (a->translate >= 0) {
		d->top = translate_offset(&r, height, a->translate, S);
		d->left = translate_offset(&r, width, a->translate, S);
		d->h = d->w = S;
		draw_jitter(a, &r, d);
		return;
	}
	double area = (double)width * height;
	double lr0 = log(a->ratio_lo), lr1 = log(a->ratio_hi);
	int found = 0;
	for (int attempt = 0; attempt < 10 && !found; attempt++) {
		double target = area * rng_uniform(&r, a->scale_lo, a->scale_hi);
		double ar = exp(rng_uniform(&r, lr0, lr1));
		int w = (int)rint(sqrt(target * ar)), h = (int)rint(sqrt(target / ar));
		if (0 < w && w <= width && 0 < h && h <= height) {
			d->top = rng_below(&r, height - h + 1);
			d->left = rng_below(&r, width - w + 1);
			d->h = h;
			d->w = w;
			found = 1;
		}
	}
	if (!found) { /* torchvision's fallback: the central crop */
		double in_ratio = (double)width / height;
		int w = width, h = height;
		if (in_ratio < a->ratio_lo)
			h = (int)rint(w / a->ratio_lo);
		else if (in_ratio > a->ratio_hi)
			w = (int)rint(h * a->ratio_hi);
		d->top = (height - h) / 2;
		d->left = (width - w) / 2;
		d->h = h;
		d->w = w;
	}
	draw_jitter(a, &r, d);
}

/* Pillow's Image.blend(degenerate, img, alpha) in place on img, with
 * degenerate given per pixel by deg(i) — ImageEnhance's definition of
 * brightness, contrast and colour. alpha is a C float as in Blend.c. */
static void blend(uint8_t *img, const uint8_t *deg, size_t n, float alpha)
{
	for (size_t i = 0; i < n; i++) {
		float t = (float)((int)deg[i] + alpha * ((int)img[i] - (int)deg[i]));
		if (alpha >= 0 && alpha <= 1.0f)
			img[i] = (uint8_t)t;
		else
			img[i] = t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
	}
}

static inline uint8_t luma(unsigned r, unsigned g, unsigned b)
{
	return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

static int jitter(uint8_t *img, int S, int c, const aim_train_draw *d)
{
	size_t npx = (size_t)S * S, n = npx * c;
	uint8_t *deg = malloc(n);
	if (!deg)
		return aim_error("out of memory");
	for (int step = 0; step < 3; step++) {
		int which = d->jitter_order[step];
		double f = which == 0 ? d->brightness : which == 1 ? d->contrast : d->saturation;
		if (f == 1.0)
			continue;
		if (which == 0) {
			memset(deg, 0, n);
		} else if (which == 1) {
			/* int(mean of convert("L") + 0.5), a flat gray */
			double sum = 0;
			for (size_t i = 0; i < npx; i++)
				sum += c == 3 ? luma(img[3 * i], img[3 * i + 1], img[3 * i + 2]) : img[i];
			memset(deg, (int)(sum / npx + 0.5), n);
		} else {
			if (c == 1)
				continue; /* gray has no saturation: blend(img, img) */
			for (size_t i = 0; i < npx; i++)
				deg[3 * i] = deg[3 * i + 1] = deg[3 * i + 2] =
					luma(img[3 * i], img[3 * i + 1], img[3 * i + 2]);
		}
		blend(img, deg, n, (float)f);
	}
	free(deg);
	return AIM_OK;
}

int aim_transform_train(const aim_image *in, int S, const aim_train_draw *d, uint8_t *out)
{
	int c = in->c;
	size_t stride = (size_t)in->w * c;
	if (d->top < 0 || d->left < 0 || d->top + d->h > in->h || d->left + d->w > in->w) {
		/* a translation's window reaching into the padding: S x S (drawn
		 * so), the image's part copied into zeros, as PIL's crop fills */
		if (d->h != S || d->w != S)
			return aim_error("crop box %dx%d outside the image is not %dx%d", d->w, d->h, S, S);
		memset(out, 0, (size_t)S * S * c);
		int y0 = d->top < 0 ? -d->top : 0, x0 = d->left < 0 ? -d->left : 0;
		int y1 = d->top + S < in->h ? S : in->h - d->top, x1 = d->left + S < in->w ? S : in->w - d->left;
		for (int y = y0; y < y1 && x0 < x1; y++)
			memcpy(out + ((size_t)y * S + x0) * c,
			       in->px + (size_t)(d->top + y) * stride + (size_t)(d->left + x0) * c,
			       (size_t)(x1 - x0) * c);
	} else if (d->h == S && d->w == S) {
		/* Pillow's resize to the size it has: a copy */
		for (int y = 0; y < S; y++)
			memcpy(out + (size_t)y * S * c,
			       in->px + (size_t)(d->top + y) * stride + (size_t)d->left * c, (size_t)S * c);
	} else {
		const uint8_t *crop = in->px + (size_t)d->top * stride + (size_t)d->left * c;
		if (aim_resize_bicubic(crop, d->w, d->h, stride, c, S, S, 0, 0, S, S, out) < 0)
			return AIM_ERR;
	}
	if (d->flip)
		for (int y = 0; y < S; y++) {
			uint8_t *row = out + (size_t)y * S * c;
			for (int a = 0, b = S - 1; a < b; a++, b--)
				for (int k = 0; k < c; k++) {
					uint8_t t = row[a * c + k];
					row[a * c + k] = row[b * c + k];
					row[b * c + k] = t;
				}
		}
	if (d->brightness != 1.0 || d->contrast != 1.0 || d->saturation != 1.0)
		return jitter(out, S, c, d);
	return AIM_OK;
}

/* The published preprocessing of each family (aim-v1: the release's
 * val transforms; AIMv2: the checkpoints' preprocessor_config.json,
 * CLIPImageProcessor: bicubic resize of the shorter side to R, centre crop
 * R, CLIP mean/std), patch 14. The resize follows the crop fraction:
 * AIM v1's ceil(S / 0.875), AIMv2's S (fraction 1). */
static const aim_preset presets[] = {
	{"aim-v1", 224, 0, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}},
	{"aimv2-224", 224, 1, {0.48145466, 0.4578275, 0.40821073}, {0.26862954, 0.26130258, 0.27577711}},
	{"aimv2-336", 336, 1, {0.48145466, 0.4578275, 0.40821073}, {0.26862954, 0.26130258, 0.27577711}},
	{"aimv2-448", 448, 1, {0.48145466, 0.4578275, 0.40821073}, {0.26862954, 0.26130258, 0.27577711}},
};

const aim_preset *aim_preset_find(const char *name)
{
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
		if (!strcmp(presets[i].name, name))
			return &presets[i];
	return NULL;
}
