/* Pillow 9.4's conversions of its modes to RGB and L (Convert.c and the
 * fallbacks of Image.convert); see pilmode.h. */
#include "pilmode.h"

#include <string.h>

int aim_pilmode_bpp(aim_pilmode m)
{
	switch (m) {
	case AIM_PM_1: case AIM_PM_L: case AIM_PM_P: return 1;
	case AIM_PM_LA: case AIM_PM_PA: case AIM_PM_I16: return 2;
	case AIM_PM_RGB: return 3;
	default: return 4;
	}
}

void aim_palette_ramp(aim_palette *p)
{
	for (int i = 0; i < 256; i++)
		p->rgb[i][0] = p->rgb[i][1] = p->rgb[i][2] = (uint8_t)i;
}

static inline uint8_t clip8(int v)
{
	return v <= 0 ? 0 : v < 256 ? (uint8_t)v : 255;
}

/* Pillow's MULDIV255: a*b/255 rounded, in integers. */
static inline int muldiv255(int a, int b)
{
	int t = a * b + 128;
	return ((t >> 8) + t) >> 8;
}

static inline void put(uint8_t *out, int channels, unsigned r, unsigned g, unsigned b)
{
	if (channels == 3) {
		out[0] = (uint8_t)r;
		out[1] = (uint8_t)g;
		out[2] = (uint8_t)b;
	} else {
		out[0] = aim_luma(r, g, b);
	}
}

static inline void put_grey(uint8_t *out, int channels, uint8_t v)
{
	out[0] = v;
	if (channels == 3)
		out[1] = out[2] = v;
}

/* f2l: clipped, then truncated toward zero; NaN is 0 (what the x86
 * conversion Pillow's cast compiles to gives). */
static inline uint8_t f2l(float v)
{
	if (v <= 0.0f)
		return 0;
	if (v >= 255.0f)
		return 255;
	if (v != v)
		return 0;
	return (uint8_t)v;
}

void aim_pilmode_convert_row(aim_pilmode m, const aim_palette *pal, const uint8_t *in, int w,
			     int channels, uint8_t *out)
{
	int x, c = channels;
	switch (m) {
	case AIM_PM_1:
		for (x = 0; x < w; x++)
			put_grey(out + x * c, c, in[x] ? 255 : 0);
		break;
	case AIM_PM_L:
		if (c == 1)
			memcpy(out, in, (size_t)w);
		else
			for (x = 0; x < w; x++)
				put_grey(out + x * c, c, in[x]);
		break;
	case AIM_PM_LA:
		for (x = 0; x < w; x++)
			put_grey(out + x * c, c, in[2 * x]);
		break;
	case AIM_PM_P:
	case AIM_PM_PA: {
		int step = m == AIM_PM_P ? 1 : 2;
		for (x = 0; x < w; x++) {
			const uint8_t *p = pal->rgb[in[step * x]];
			put(out + x * c, c, p[0], p[1], p[2]);
		}
		break;
	}
	case AIM_PM_RGB:
		if (c == 3)
			memcpy(out, in, (size_t)w * 3);
		else
			for (x = 0; x < w; x++)
				out[x] = aim_luma(in[3 * x], in[3 * x + 1], in[3 * x + 2]);
		break;
	case AIM_PM_RGBA:
		for (x = 0; x < w; x++)
			put(out + x * c, c, in[4 * x], in[4 * x + 1], in[4 * x + 2]);
		break;
	case AIM_PM_RGBa: /* rgba2rgb_ (to L: through RGB) */
		for (x = 0; x < w; x++) {
			const uint8_t *p = in + 4 * x;
			unsigned a = p[3];
			if (a == 0 || a == 255)
				put(out + x * c, c, p[0], p[1], p[2]);
			else
				put(out + x * c, c, clip8((int)(255 * p[0] / a)), clip8((int)(255 * p[1] / a)),
				    clip8((int)(255 * p[2] / a)));
		}
		break;
	case AIM_PM_CMYK: /* cmyk2rgb (to L: through RGB) */
		for (x = 0; x < w; x++) {
			const uint8_t *p = in + 4 * x;
			int nk = 255 - p[3];
			put(out + x * c, c, clip8(nk - muldiv255(p[0], nk)), clip8(nk - muldiv255(p[1], nk)),
			    clip8(nk - muldiv255(p[2], nk)));
		}
		break;
	case AIM_PM_I:
		for (x = 0; x < w; x++) {
			int32_t v;
			memcpy(&v, in + 4 * x, 4);
			put_grey(out + x * c, c, v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v);
		}
		break;
	case AIM_PM_I16: /* I16L_L, then L -> RGB */
		for (x = 0; x < w; x++) {
			uint16_t v;
			memcpy(&v, in + 2 * x, 2);
			put_grey(out + x * c, c, v > 255 ? 255 : (uint8_t)v);
		}
		break;
	case AIM_PM_F: /* f2l, then L -> RGB */
		for (x = 0; x < w; x++) {
			float v;
			memcpy(&v, in + 4 * x, 4);
			put_grey(out + x * c, c, f2l(v));
		}
		break;
	}
}
