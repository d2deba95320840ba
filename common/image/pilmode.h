/* Pillow's image modes and its convert("RGB") / convert("L") of one row.
 *
 * Every decoder of this folder first produces rows in the mode Pillow 9.4
 * opens the file in (the layout Pillow keeps in memory), then converts
 * them here exactly as Pillow's Convert.c does, including the two-step
 * conversions Image.convert falls back to (I;16 and F through L, RGBa and
 * CMYK to L through RGB). Keeping the decoders to "what Pillow holds"
 * and the conversion in one place is what makes the pixels bit-identical.
 *
 * Row layouts (bytes per pixel):
 *   1      1  0 or non-zero (black / white)
 *   L      1
 *   LA     2  (grey, alpha)
 *   P      1  index into a 256-entry palette (entries a file does not
 *             give are Pillow's grey ramp: entry i = (i, i, i))
 *   PA     2  (index, alpha)
 *   RGB    3
 *   RGBA   4  (alpha ignored)
 *   RGBa   4  premultiplied alpha: convert divides it out
 *   CMYK   4  ink values, Pillow's cmyk2rgb
 *   I      4  int32 in host order, clipped to 0..255
 *   I16    2  uint16 in host order, clipped to 0..255 (Pillow's I;16)
 *   F      4  float in host order, clipped to 0..255 and truncated */
#ifndef AIM_PILMODE_H
#define AIM_PILMODE_H

#include <stdint.h>

typedef enum {
	AIM_PM_1, AIM_PM_L, AIM_PM_LA, AIM_PM_P, AIM_PM_PA, AIM_PM_RGB, AIM_PM_RGBA,
	AIM_PM_RGBa, AIM_PM_CMYK, AIM_PM_I, AIM_PM_I16, AIM_PM_F,
} aim_pilmode;

/* Bytes per pixel of a row in that mode. */
int aim_pilmode_bpp(aim_pilmode m);

/* A palette as Pillow holds it: 256 RGB entries. */
typedef struct {
	uint8_t rgb[256][3];
} aim_palette;

/* The grey ramp Pillow starts every palette with. */
void aim_palette_ramp(aim_palette *p);

/* w pixels of `in` (mode m; pal for P and PA) to w pixels of `out` with
 * channels 1 (L) or 3 (RGB). */
void aim_pilmode_convert_row(aim_pilmode m, const aim_palette *pal, const uint8_t *in, int w,
			     int channels, uint8_t *out);

/* ITU-R 601-2 luma exactly as Pillow's L24() >> 16. */
static inline uint8_t aim_luma(unsigned r, unsigned g, unsigned b)
{
	return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

#endif
