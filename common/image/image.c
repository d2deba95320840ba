/* Recognising an image by its first bytes and handing it to its decoder
 * (decode_*.c); see image.h for the guarantees. */
#include "image.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
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

int aim_image_check_size(const char *fmt, long long w, long long h, int64_t max_pixels)
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

/* The signatures Pillow's plugins accept (their _accept functions). */
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
	if (len >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4) || !memcmp(p, "II\0*", 4) ||
			 !memcmp(p, "MM*\0", 4) || !memcmp(p, "II+\0", 4) || !memcmp(p, "MM\0+", 4)))
		return "TIFF";
	if (len >= 2 && p[0] == 'B' && p[1] == 'M')
		return "BMP";
	if (len >= 2 && p[0] == 'P' && ((p[1] >= '0' && p[1] <= '6') || p[1] == 'y'))
		return "PNM";
	if (len >= 12 && !memcmp(p, "\0\0\0\x0cjP  ", 8))
		return "JPEG 2000";
	return NULL;
}

int aim_image_decode(const void *data, size_t len, int channels, int64_t max_pixels,
		     aim_image *out)
{
	static const struct {
		const char *fmt;
		int (*decode)(const uint8_t *, size_t, int, int64_t, aim_image *);
	} decoders[] = {
		{"JPEG", aim_decode_jpeg}, {"PNG", aim_decode_png}, {"GIF", aim_decode_gif},
		{"WebP", aim_decode_webp}, {"BMP", aim_decode_bmp}, {"PNM", aim_decode_pnm},
		{"TIFF", aim_decode_tiff},
	};
	out->px = NULL;
	out->w = out->h = out->c = 0;
	if (channels != 1 && channels != 3)
		return aim_error("channels must be 1 or 3");
	if (len == 0)
		return aim_error("empty file");
	const char *fmt = aim_image_sniff(data, len);
	if (!fmt)
		return aim_error("unknown image format");
	for (size_t i = 0; i < sizeof decoders / sizeof *decoders; i++)
		if (!strcmp(fmt, decoders[i].fmt))
			return decoders[i].decode(data, len, channels, max_pixels, out);
	return aim_error("unsupported image format %s", fmt);
}
