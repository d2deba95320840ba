/* Pillow 9.4's TIFF modes, shared by decode_tiff.c and tiff_modes.c
 * (internal to the image layer): which mode and raw mode Pillow opens a
 * first directory as (its OPEN_INFO table), and its unpackers from those
 * raw modes to 8-bit pixels. */
#ifndef AIM_TIFF_MODES_H
#define AIM_TIFF_MODES_H

#include <stdint.h>

#include "pilmode.h"

typedef struct {
	char order;  /* 'I', 'M', or '*' for both */
	uint16_t photo, format, fill, spp, bits, nextra, extra[3];
	const char *mode, *rawmode;
} open_info;

/* The entry of this key (byte order 'I' or 'M', photometric, sample
 * format, fill order, samples per pixel, bits, extra samples); NULL: Pillow
 * refuses the file. */
const open_info *aim_tiff_open_info(char order, uint16_t photo, uint16_t format, uint16_t fill,
				     uint16_t spp, uint16_t bits, uint16_t nextra, const uint16_t *extra);

typedef enum {
	R_BITS1, R_BITS1I, R_L2, R_L2I, R_L4, R_L4I, R_L, R_LI, R_I12, R_I16, R_I16S_LE, R_I16S,
	R_I32, R_I32_LE, R_I32_BE, R_F32, R_F32_LE, R_F32_BE, R_P1, R_P2, R_P4, R_SAMPLES,
} raw_kind;

typedef struct {
	raw_kind kind;
	int bits;       /* of one pixel in the buffer (Pillow's unpacker bits) */
	int nin, nout;  /* R_SAMPLES: keep the first nout of nin samples */
	int wide;       /* R_SAMPLES: 16-bit samples (the high byte is kept) */
	int premul;     /* R_SAMPLES: RGBa, premultiplied alpha divided out */
	aim_pilmode pm; /* the mode the pixels are then in */
} raw_fmt;

static inline uint8_t clip8(int v)
{
	return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
}

/* Pillow's unpackRGBa: associated alpha divided out of an RGBA pixel. */
static inline void unpremultiply_rgba(uint8_t *o)
{
	int a = o[3];
	if (a == 0)
		o[0] = o[1] = o[2] = 0;
	else if (a != 255)
		for (int k = 0; k < 3; k++)
			o[k] = clip8(o[k] * 255 / a);
}

/* The unpacker of raw mode `raw` for an image of `mode` (compressed: the
 * data comes through libtiff); -1 where Pillow has none. */
int aim_tiff_raw_format(const char *mode, const char *raw, int compressed, raw_fmt *f);
/* n pixels of a row from in to out, as Pillow's unpacker. */
void aim_tiff_unpack(const raw_fmt *f, const uint8_t *in, int n, uint8_t *out);

#endif
