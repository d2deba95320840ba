/* Decoding images into 8-bit RGB or grayscale pixels.
 *
 * The pixels are those Pillow 9.4 gives for Image.open(f).convert("RGB")
 * (channels 3) or .convert("L") (channels 1), byte for byte, for every
 * colour mode Pillow reads in these formats (one decoder file each,
 * decode_*.c, which says what it accepts):
 *   JPEG: grayscale, YCbCr/RGB, CMYK/YCCK (Adobe polarity).
 *   PNG:  gray 1/2/4/8/16 bits, RGB 8/16, palette 1/2/4/8 bits, gray+alpha,
 *         RGBA; chunks read by Pillow's rules (decode_png.c).
 *   WebP: lossy and lossless, with or without alpha; the first frame of
 *         an animation.
 *   GIF:  the first frame (Pillow's own LZW decoder's rules).
 *   BMP:  1/4/8-bit palette, 16/24/32 bits, RLE8/RLE4, bit fields.
 *   PPM/PGM/PBM: raw and plain, any maxval, Pillow's P0CMYK/PyP/PyRGBA/
 *         PyCMYK.
 *   TIFF: the first page; every mode of Pillow's table but LAB, every
 *         compression libtiff decodes (decode_tiff.c).
 * The conversions to RGB and L are Pillow's (pilmode.h). No gamma, ICC
 * profile or EXIF orientation is applied (Pillow applies none). The format
 * is recognised by its signature, as Pillow's plugins do, not by a name.
 *
 * Errors (truncated or corrupt data, unsupported formats, images over the
 * pixel limit: exactly the files Pillow refuses) return AIM_ERR with a
 * one-line reason in aim_errmsg(). The decoders never exit and are safe
 * to run in parallel threads. */
#ifndef AIM_IMAGE_H
#define AIM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	int w, h, c;  /* c = 1 (L) or 3 (RGB) */
	uint8_t *px;  /* h rows of w*c bytes, interleaved; malloc'd */
} aim_image;

/* Pillow's Image.MAX_IMAGE_PIXELS * 2: where Pillow raises
 * DecompressionBombError. */
#define AIM_IMAGE_DEFAULT_MAX_PIXELS 178956970LL

/* Name of the format recognised from the first bytes ("JPEG", "PNG",
 * "WebP", "GIF", "BMP", "PNM", "TIFF", or "JPEG 2000", which we do not
 * decode), or NULL if unknown. */
const char *aim_image_sniff(const void *data, size_t len);

/* Decode an image held in memory. channels: 1 or 3. max_pixels: refuse
 * images with more pixels than that (<= 0: no limit). */
int aim_image_decode(const void *data, size_t len, int channels, int64_t max_pixels,
		     aim_image *out);

/* Allocate an image (pixels uninitialised). */
int aim_image_alloc(aim_image *im, int w, int h, int c);
void aim_image_free(aim_image *im);

#endif
