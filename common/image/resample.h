/* Bicubic resizing, bit-identical to Pillow 9.4's Image.resize(size,
 * Image.BICUBIC) on "L" and "RGB" images (libImaging/Resample.c).
 *
 * Pillow's method, which this reproduces step by step:
 *  - a separable convolution: a horizontal pass into a temporary image,
 *    then a vertical pass; a pass is skipped when that side keeps its size;
 *  - the cubic kernel with a = -0.5, support 2 scaled by the reduction
 *    factor (support = 2 * in/out when shrinking, 2 when enlarging);
 *  - output sample i is centred at (i + 0.5) * in/out; taps from
 *    (int)(centre - support + 0.5) to (int)(centre + support + 0.5),
 *    clamped to the image; weights normalised to sum 1 in double;
 *  - weights rounded to 22-bit fixed point (away from zero at .5), sums
 *    in int32 starting at 1 << 21, result >> 22 clipped to 0..255, the
 *    horizontal result stored as 8-bit before the vertical pass.
 *
 * Because each output pixel depends only on its own taps, a window of the
 * output can be computed alone; a centre crop then costs only the pixels
 * it keeps. */
#ifndef AIM_RESAMPLE_H
#define AIM_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* Resize src (sw x sh pixels, c = 1 or 3 interleaved channels, rows
 * sstride bytes apart) to ow x oh and store the window of the result
 * starting at (x0, y0), of size cw x ch, into dst (rows cw*c bytes apart).
 * The window must lie inside ow x oh. Returns AIM_OK or AIM_ERR (memory). */
int aim_resize_bicubic(const uint8_t *src, int sw, int sh, size_t sstride, int c, int ow,
		       int oh, int x0, int y0, int cw, int ch, uint8_t *dst);

#endif
