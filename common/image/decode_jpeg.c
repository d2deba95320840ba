/* JPEG through libjpeg-turbo, as Pillow 9.4 decodes it: grayscale (L),
 * YCbCr/RGB (RGB), CMYK/YCCK (Adobe polarity: the decoder's CMYK is
 * inverted, then Pillow's cmyk2rgb). Warnings (corrupt entropy data) are
 * ignored as Pillow ignores them; running out of data before the last
 * scanline is Pillow's "image file is truncated"; after it, the rest of
 * the file is read to EOI as Pillow's jpeg_finish_decompress reads it. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "codec.h"
#include "err.h"

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
static void jpeg_convert_row(uint8_t *in, int ncomp, int w, int channels, uint8_t *out)
{
	if (ncomp == 1) {
		aim_pilmode_convert_row(AIM_PM_L, NULL, in, w, channels, out);
	} else if (ncomp == 3) { /* to L: RGB to RGB never comes here (direct) */
		aim_pilmode_convert_row(AIM_PM_RGB, NULL, in, w, channels, out);
	} else {
		/* Adobe CMYK is stored inverted (Pillow's rawmode "CMYK;I") */
		for (int x = 0; x < 4 * w; x++)
			in[x] = (uint8_t)(255 - in[x]);
		aim_pilmode_convert_row(AIM_PM_CMYK, NULL, in, w, channels, out);
	}
}

int aim_decode_jpeg(const uint8_t *data, size_t len, int channels, int64_t max_pixels,
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
	if (aim_image_check_size("JPEG", ci.image_width, ci.image_height, max_pixels) < 0) {
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
	/* Pillow finishes the decompression: the markers after the last scan
	 * are read up to EOI, and a broken one is an error (running out of
	 * data there is not: its suspending source just stops). */
	jpeg_finish_decompress(&ci);
	jpeg_destroy_decompress(&ci);
	free(row);
	return AIM_OK;

truncated:
	jpeg_destroy_decompress(&ci);
	free(row);
	aim_image_free(out);
	return aim_error("JPEG: file is truncated");
}
