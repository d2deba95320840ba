/* JPEG (libjpeg-turbo) and PNG (libpng) decoding with Pillow's colour
 * conversions; see image.h for the exact rules. */
#include "image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "err.h"

int aim_image_alloc(aim_image *im, int w, int h, int c)
{
	im->w = w;
	im->h = h;
	im->c = c;
	size_t n = (size_t)w * h * c;
	im->px = malloc(n ? n : 1);
	if (!im->px)
		return aim_error("out of memory for a %dx%d image", w, h);
	return AIM_OK;
}

void aim_image_free(aim_image *im)
{
	free(im->px);
	im->px = NULL;
	im->w = im->h = im->c = 0;
}

const char *aim_image_sniff(const void *data, size_t len)
{
	const unsigned char *p = data;
	if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
		return "JPEG";
	if (len >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8))
		return "PNG";
	if (len >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6)))
		return "GIF";
	if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
		return "WebP";
	if (len >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4)))
		return "TIFF";
	if (len >= 2 && p[0] == 'B' && p[1] == 'M')
		return "BMP";
	if (len >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7')
		return "PNM";
	if (len >= 12 && !memcmp(p, "\0\0\0\x0cjP  ", 8))
		return "JPEG 2000";
	return NULL;
}

/* ITU-R 601-2 luma exactly as Pillow's L24() >> 16. */
static inline uint8_t luma(unsigned r, unsigned g, unsigned b)
{
	return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
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

static void put_rgb(uint8_t *out, int channels, unsigned r, unsigned g, unsigned b)
{
	if (channels == 3) {
		out[0] = (uint8_t)r;
		out[1] = (uint8_t)g;
		out[2] = (uint8_t)b;
	} else {
		out[0] = luma(r, g, b);
	}
}

static void put_gray(uint8_t *out, int channels, unsigned v)
{
	out[0] = (uint8_t)v;
	if (channels == 3)
		out[1] = out[2] = (uint8_t)v;
}

static int check_size(const char *fmt, long long w, long long h, int64_t max_pixels)
{
	if (w <= 0 || h <= 0)
		return aim_error("%s: bad image size %lldx%lld", fmt, w, h);
	if (max_pixels > 0 && w * h > max_pixels)
		return aim_error("%s: %lldx%lld = %lld pixels exceeds the limit of %lld "
				 "(--max-pixels)", fmt, w, h, w * h, (long long)max_pixels);
	if (w > (1 << 28) || h > (1 << 28) || w * h > (1LL << 40))
		return aim_error("%s: image %lldx%lld too large", fmt, w, h);
	return AIM_OK;
}

/* ---- JPEG ---------------------------------------------------------------- */

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	int hit_eof; /* libjpeg ran out of data and inserted a fake EOI */
} jpeg_failure;

static void jpeg_on_error(j_common_ptr ci)
{
	jpeg_failure *f = (jpeg_failure *)ci->err;
	longjmp(f->jump, 1);
}

/* Warnings (corrupt entropy data and the like) are ignored, as Pillow ignores
 * them; running out of data is remembered: Pillow calls that truncated. */
static void jpeg_on_message(j_common_ptr ci, int level)
{
	jpeg_failure *f = (jpeg_failure *)ci->err;
	if (level < 0) {
		if (ci->err->msg_code == JWRN_JPEG_EOF)
			f->hit_eof = 1;
		ci->err->num_warnings++;
	}
}

static void jpeg_silent(j_common_ptr ci)
{
	(void)ci;
}

/* One decoded scanline (in the decoder's output space) to our pixels. */
static void jpeg_convert_row(const uint8_t *in, int ncomp, int w, int channels, uint8_t *out)
{
	int x;
	if (ncomp == 1) {
		for (x = 0; x < w; x++)
			put_gray(out + x * channels, channels, in[x]);
	} else if (ncomp == 3) { /* to L: RGB to RGB never comes here (direct) */
		for (x = 0; x < w; x++)
			out[x] = luma(in[3 * x], in[3 * x + 1], in[3 * x + 2]);
	} else {
		/* Adobe CMYK is stored inverted ("CMYK;I"), then cmyk2rgb */
		for (x = 0; x < w; x++) {
			int c = 255 - in[4 * x], m = 255 - in[4 * x + 1];
			int y = 255 - in[4 * x + 2], nk = in[4 * x + 3]; /* 255 - (255 - k) */
			put_rgb(out + x * channels, channels, clip8(nk - muldiv255(c, nk)),
				clip8(nk - muldiv255(m, nk)), clip8(nk - muldiv255(y, nk)));
		}
	}
}

static int decode_jpeg(const uint8_t *data, size_t len, int channels, int64_t max_pixels,
		       aim_image *out)
{
	struct jpeg_decompress_struct ci;
	jpeg_failure fail;
	uint8_t *volatile row = NULL;
	char msg[JMSG_LENGTH_MAX];

	memset(&fail, 0, sizeof fail);
	ci.err = jpeg_std_error(&fail.pub);
	fail.pub.error_exit = jpeg_on_error;
	fail.pub.emit_message = jpeg_on_message;
	fail.pub.output_message = jpeg_silent;
	if (setjmp(fail.jump)) {
		ci.err->format_message((j_common_ptr)&ci, msg);
		jpeg_destroy_decompress(&ci);
		free(row);
		aim_image_free(out);
		return aim_error("JPEG: %s", msg);
	}
	jpeg_create_decompress(&ci);
	jpeg_mem_src(&ci, data, (unsigned long)len);
	jpeg_read_header(&ci, TRUE);
	if (fail.hit_eof)
		goto truncated;
	int ncomp = ci.num_components;
	if (ncomp == 1)
		ci.out_color_space = JCS_GRAYSCALE;
	else if (ncomp == 3)
		ci.out_color_space = JCS_RGB;
	else if (ncomp == 4)
		ci.out_color_space = JCS_CMYK;
	else {
		jpeg_destroy_decompress(&ci);
		return aim_error("JPEG: cannot handle %d-component images", ncomp);
	}
	if (check_size("JPEG", ci.image_width, ci.image_height, max_pixels) < 0) {
		jpeg_destroy_decompress(&ci);
		return AIM_ERR;
	}
	jpeg_start_decompress(&ci);
	int w = (int)ci.output_width, h = (int)ci.output_height;
	if (aim_image_alloc(out, w, h, channels) < 0) {
		jpeg_destroy_decompress(&ci);
		return AIM_ERR;
	}
	/* Scanlines land straight in the output when no conversion is needed. */
	int direct = (ncomp == 1 && channels == 1) || (ncomp == 3 && channels == 3);
	if (!direct) {
		row = malloc((size_t)w * ncomp);
		if (!row) {
			jpeg_destroy_decompress(&ci);
			aim_image_free(out);
			return aim_error("out of memory");
		}
	}
	size_t stride = (size_t)w * channels;
	while (ci.output_scanline < ci.output_height) {
		unsigned y = ci.output_scanline;
		if (direct) {
			JSAMPROW rows[16];
			int n = 0;
			while (n < 16 && y + n < ci.output_height) {
				rows[n] = out->px + (y + n) * stride;
				n++;
			}
			jpeg_read_scanlines(&ci, rows, n);
		} else {
			JSAMPROW r = row;
			if (jpeg_read_scanlines(&ci, &r, 1) == 1)
				jpeg_convert_row(row, ncomp, w, channels, out->px + y * stride);
		}
	}
	/* Running out of data before the last scanline is a truncated file
	 * (Pillow: "image file is truncated"); a missing EOI after it is not. */
	if (fail.hit_eof)
		goto truncated;
	jpeg_destroy_decompress(&ci);
	free(row);
	return AIM_OK;

truncated:
	jpeg_destroy_decompress(&ci);
	free(row);
	aim_image_free(out);
	return aim_error("JPEG: file is truncated");
}

/* ---- PNG ----------------------------------------------------------------- */

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
				out[x] = luma(in[3 * x], in[3 * x + 1], in[3 * x + 2]);
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

static int decode_png(const uint8_t *data, size_t len, int channels, int64_t max_pixels,
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
	if (check_size("PNG", w, h, max_pixels) < 0) {
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

int aim_image_decode(const void *data, size_t len, int channels, int64_t max_pixels,
		     aim_image *out)
{
	out->px = NULL;
	out->w = out->h = out->c = 0;
	if (channels != 1 && channels != 3)
		return aim_error("channels must be 1 or 3");
	if (len == 0)
		return aim_error("empty file");
	const char *fmt = aim_image_sniff(data, len);
	if (!fmt)
		return aim_error("unknown image format");
	if (!strcmp(fmt, "JPEG"))
		return decode_jpeg(data, len, channels, max_pixels, out);
	if (!strcmp(fmt, "PNG"))
		return decode_png(data, len, channels, max_pixels, out);
	return aim_error("unsupported image format %s (JPEG and PNG are decoded)", fmt);
}
