/* PNG through libpng, with the pixels of Pillow 9.4's PNG modes (_MODES
 * in PngImagePlugin): gray 1/2/4/8 bits (scaled to 0..255), gray 16 bits
 * (mode "I": values clipped to 0..255), RGB 8/16 (high byte), palette
 * 1/2/4/8 bits (transparency ignored, missing entries a gray ramp),
 * gray+alpha, RGBA (alpha dropped). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "codec.h"
#include "err.h"

static void put_rgb(uint8_t *out, int channels, unsigned r, unsigned g, unsigned b)
{
	if (channels == 3) {
		out[0] = (uint8_t)r;
		out[1] = (uint8_t)g;
		out[2] = (uint8_t)b;
	} else {
		out[0] = aim_luma(r, g, b);
	}
}

static void put_gray(uint8_t *out, int channels, unsigned v)
{
	out[0] = (uint8_t)v;
	if (channels == 3)
		out[1] = out[2] = (uint8_t)v;
}

typedef struct {
	jmp_buf jump;
	char msg[200];
	const uint8_t *data;
	size_t len, pos;
} png_source;

static void png_on_error(png_structp png, png_const_charp msg)
{
	png_source *s = png_get_error_ptr(png);
	snprintf(s->msg, sizeof s->msg, "%s", msg);
	longjmp(s->jump, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void png_read_memory(png_structp png, png_bytep dst, png_size_t n)
{
	png_source *s = png_get_io_ptr(png);
	if (n > s->len - s->pos)
		png_error(png, "file is truncated");
	memcpy(dst, s->data + s->pos, n);
	s->pos += n;
}

typedef struct {
	int ctype, depth, channels;
	uint8_t pal[256][3];
} png_layout;

/* One row as libpng delivers it (1/2/4-bit samples unpacked to bytes,
 * 16-bit samples big-endian) to our pixels, following Pillow's unpackers
 * for each PNG mode (_MODES in PngImagePlugin). */
static void png_convert_row(const png_layout *L, const uint8_t *in, int w, uint8_t *out)
{
	int x, c = L->channels;
	switch (L->ctype) {
	case PNG_COLOR_TYPE_GRAY:
		if (L->depth == 16) { /* mode "I": convert() clips to 0..255 */
			for (x = 0; x < w; x++) {
				unsigned v = (unsigned)in[2 * x] << 8 | in[2 * x + 1];
				put_gray(out + x * c, c, v > 255 ? 255 : v);
			}
		} else {
			unsigned scale = L->depth == 1 ? 255 : L->depth == 2 ? 85 : L->depth == 4 ? 17 : 1;
			for (x = 0; x < w; x++)
				put_gray(out + x * c, c, in[x] * scale);
		}
		break;
	case PNG_COLOR_TYPE_RGB:
		if (L->depth == 16)
			for (x = 0; x < w; x++)
				put_rgb(out + x * c, c, in[6 * x], in[6 * x + 2], in[6 * x + 4]);
		else if (c == 3)
			memcpy(out, in, (size_t)w * 3);
		else
			for (x = 0; x < w; x++)
				out[x] = aim_luma(in[3 * x], in[3 * x + 1], in[3 * x + 2]);
		break;
	case PNG_COLOR_TYPE_PALETTE:
		for (x = 0; x < w; x++) {
			const uint8_t *p = L->pal[in[x]];
			put_rgb(out + x * c, c, p[0], p[1], p[2]);
		}
		break;
	case PNG_COLOR_TYPE_GRAY_ALPHA: {
		int step = L->depth == 16 ? 4 : 2;
		for (x = 0; x < w; x++)
			put_gray(out + x * c, c, in[step * x]);
		break;
	}
	case PNG_COLOR_TYPE_RGB_ALPHA: {
		int step = L->depth == 16 ? 8 : 4, d = L->depth == 16 ? 2 : 1;
		for (x = 0; x < w; x++)
			put_rgb(out + x * c, c, in[step * x], in[step * x + d], in[step * x + 2 * d]);
		break;
	}
	}
}

int aim_decode_png(const uint8_t *data, size_t len, int channels, int64_t max_pixels,
		      aim_image *out)
{
	png_source src;
	png_structp png;
	png_infop info = NULL;
	uint8_t *volatile raw = NULL;
	uint8_t **volatile rows = NULL;
	png_layout *volatile L = NULL;

	memset(&src, 0, sizeof src);
	src.data = data;
	src.len = len;
	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
	if (!png)
		return aim_error("PNG: cannot start libpng");
	if (setjmp(src.jump)) {
		png_destroy_read_struct(&png, &info, NULL);
		free(raw);
		free(rows);
		free(L);
		aim_image_free(out);
		return aim_error("PNG: %s", src.msg);
	}
	info = png_create_info_struct(png);
	if (!info)
		png_error(png, "out of memory");
	png_set_read_fn(png, &src, png_read_memory);
	png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
	/* Pillow checks the CRC of every chunk before the image data. */
	png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
	png_read_info(png, info);

	png_uint_32 w, h;
	int depth, ctype, interlace;
	png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
	if (aim_image_check_size("PNG", w, h, max_pixels) < 0) {
		png_destroy_read_struct(&png, &info, NULL);
		return AIM_ERR;
	}
	L = calloc(1, sizeof *L);
	if (!L)
		png_error(png, "out of memory");
	L->ctype = ctype;
	L->depth = depth;
	L->channels = channels;
	if (ctype == PNG_COLOR_TYPE_PALETTE) {
		/* Pillow's palette starts as a gray ramp; PLTE overwrites its head */
		for (int i = 0; i < 256; i++)
			L->pal[i][0] = L->pal[i][1] = L->pal[i][2] = (uint8_t)i;
		png_colorp plte;
		int n = 0;
		if (png_get_PLTE(png, info, &plte, &n) & PNG_INFO_PLTE)
			for (int i = 0; i < n && i < 256; i++) {
				L->pal[i][0] = plte[i].red;
				L->pal[i][1] = plte[i].green;
				L->pal[i][2] = plte[i].blue;
			}
	}
	if (depth < 8)
		png_set_packing(png);
	int passes = png_set_interlace_handling(png);
	png_read_update_info(png, info);
	size_t rowbytes = png_get_rowbytes(png, info);

	if (aim_image_alloc(out, (int)w, (int)h, channels) < 0)
		png_error(png, "out of memory");
	size_t stride = (size_t)w * channels;
	if (passes == 1) {
		raw = malloc(rowbytes);
		if (!raw)
			png_error(png, "out of memory");
		for (png_uint_32 y = 0; y < h; y++) {
			png_read_row(png, raw, NULL);
			png_convert_row(L, raw, (int)w, out->px + y * stride);
		}
	} else {
		raw = malloc(rowbytes * h);
		rows = malloc(sizeof(uint8_t *) * h);
		if (!raw || !rows)
			png_error(png, "out of memory");
		for (png_uint_32 y = 0; y < h; y++)
			rows[y] = raw + y * rowbytes;
		png_read_image(png, rows);
		for (png_uint_32 y = 0; y < h; y++)
			png_convert_row(L, rows[y], (int)w, out->px + y * stride);
	}
	png_destroy_read_struct(&png, &info, NULL);
	free(raw);
	free(rows);
	free(L);
	return AIM_OK;
}
