/* The decoders behind aim_image_decode, one file each (decode_*.c), and
 * what they share. Internal to the image layer. Each takes the whole file
 * in memory, fills *out with channels 1 (L) or 3 (RGB) as Pillow's
 * convert() would, and on failure returns AIM_ERR with the image freed and
 * a reason in aim_errmsg(). */
#ifndef AIM_CODEC_H
#define AIM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "pilmode.h"

int aim_decode_jpeg(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out);
int aim_decode_png(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out);
int aim_decode_webp(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out);
int aim_decode_gif(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out);
int aim_decode_bmp(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out);
int aim_decode_tiff(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out);
int aim_decode_pnm(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out);

/* Refuse sizes Pillow refuses (not positive) and those over max_pixels
 * (Pillow's DecompressionBombError), and any too large to address. */
int aim_image_check_size(const char *fmt, long long w, long long h, int64_t max_pixels);

#endif
