/* Windows bitmaps as Pillow 9.4's BmpImagePlugin reads them. Its rules,
 * quirks included, decide what is accepted:
 *  - headers of 12 (OS/2), 40, 64, 108 or 124 bytes; 1, 4, 8, 16, 24 or 32
 *    bits per pixel (2 bits is refused); compression none, RLE8, RLE4 or
 *    bitfields with the masks Pillow lists (the 40-byte header's masks
 *    follow it, others' are in it);
 *  - a palette (bits <= 8) of the header's colour count (1 << bits when 0,
 *    at most 65536) is read right after the header; one that is the grey
 *    ramp (or black and white for two colours) makes the image Pillow's
 *    mode L (or 1) and the pixels are then read as 8-bit (1-bit) samples
 *    whatever the file's depth, as Pillow reads them; a colour palette of
 *    more than 256 entries is refused;
 *  - the pixel data starts at the file header's offset (moved past the
 *    palette when it points right after the header), rows bottom-up unless
 *    the height is negative, each row padded to 4 bytes; a last row
 *    without its padding is enough; less data is an error;
 *  - RLE data is expanded as Pillow's Python decoder expands it (runs
 *    clipped to the row, a delta reading four bytes, absolute runs padded
 *    to an even file position, RLE4's absolute runs of count // 2 bytes),
 *    and must give every pixel; RLE of a mode 1 or colour image is refused.
 * One deviation: where Pillow maps the file (an 8-bit grey read of a
 * narrower file row) and reads past the end of it, the file is refused. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "err.h"

static uint32_t le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static unsigned le16(const uint8_t *p)
{
	return p[0] | (unsigned)p[1] << 8;
}

/* Pillow's raw modes for BMP pixels. */
typedef enum { RAW_1, RAW_P1, RAW_P4, RAW_8, RAW_BGR15, RAW_BGR16, RAW_BGR, RAW_BGRX, RAW_XBGR,
	       RAW_ABGR, RAW_BGRA, RAW_RGBA } rawmode;

static int raw_bits(rawmode r)
{
	switch (r) {
	case RAW_1: case RAW_P1: return 1;
	case RAW_P4: return 4;
	case RAW_8: return 8;
	case RAW_BGR15: case RAW_BGR16: return 16;
	case RAW_BGR: return 24;
	default: return 32;
	}
}

/* One file row (rawmode r) to a row of Pillow mode m. */
static void unpack_row(rawmode r, const uint8_t *in, int w, uint8_t *out)
{
	int x;
	switch (r) {
	case RAW_1:
		for (x = 0; x < w; x++)
			out[x] = in[x >> 3] >> (7 - (x & 7)) & 1 ? 255 : 0;
		break;
	case RAW_P1:
		for (x = 0; x < w; x++)
			out[x] = in[x >> 3] >> (7 - (x & 7)) & 1;
		break;
	case RAW_P4:
		for (x = 0; x < w; x++)
			out[x] = x & 1 ? in[x >> 1] & 15 : in[x >> 1] >> 4;
		break;
	case RAW_8:
		memcpy(out, in, (size_t)w);
		break;
	case RAW_BGR15: case RAW_BGR16:
		for (x = 0; x < w; x++) {
			unsigned v = le16(in + 2 * x);
			uint8_t *o = out + 3 * x;
			o[2] = (uint8_t)((v & 31) * 255 / 31);
			if (r == RAW_BGR15) {
				o[1] = (uint8_t)(((v >> 5) & 31) * 255 / 31);
				o[0] = (uint8_t)(((v >> 10) & 31) * 255 / 31);
			} else {
				o[1] = (uint8_t)(((v >> 5) & 63) * 255 / 63);
				o[0] = (uint8_t)(((v >> 11) & 31) * 255 / 31);
			}
		}
		break;
	case RAW_BGR:
		for (x = 0; x < w; x++) {
			out[3 * x] = in[3 * x + 2];
			out[3 * x + 1] = in[3 * x + 1];
			out[3 * x + 2] = in[3 * x];
		}
		break;
	default: { /* 32 bits: where R, G, B sit */
		static const int at[][3] = {
			[RAW_BGRX] = {2, 1, 0}, [RAW_XBGR] = {3, 2, 1}, [RAW_ABGR] = {3, 2, 1},
			[RAW_BGRA] = {2, 1, 0}, [RAW_RGBA] = {0, 1, 2},
		};
		for (x = 0; x < w; x++) {
			out[3 * x] = in[4 * x + at[r][0]];
			out[3 * x + 1] = in[4 * x + at[r][1]];
			out[3 * x + 2] = in[4 * x + at[r][2]];
		}
	}
	}
}

/* Pillow's BmpRleDecoder: fills idx (w*h, file row order) and returns 0,
 * or an error when the data gives too few pixels. */
static int expand_rle(const uint8_t *data, size_t len, size_t pos, int rle4, long long w, long long h,
		      uint8_t *idx)
{
	long long total = w * h, n = 0, x = 0;
#define PUT(v) do { if (n < total) idx[n] = (uint8_t)(v); n++; } while (0)
	while (n < total) {
		if (pos + 2 > len)
			break;
		int num = data[pos], b = data[pos + 1];
		pos += 2;
		if (num) {
			if (x + num > w)
				num = (int)(w - x > 0 ? w - x : 0);
			for (int i = 0; i < num; i++)
				PUT(rle4 ? (i % 2 ? b & 15 : b >> 4) : b);
			x += num;
		} else if (b == 0) { /* end of line */
			while (n % w)
				PUT(0);
			x = 0;
		} else if (b == 1) { /* end of bitmap */
			break;
		} else if (b == 2) { /* delta: Pillow reads two bytes, then uses the next two */
			if (pos + 2 > len)
				break;
			pos += 2;
			if (pos + 2 > len)
				return aim_error("BMP: file is truncated in an RLE delta");
			long long end = n + data[pos] + (long long)data[pos + 1] * w;
			pos += 2;
			while (n < end && n < total)
				PUT(0);
			n = end;
			x = n % w;
		} else { /* an absolute run */
			size_t count = rle4 ? (size_t)b / 2 : (size_t)b;
			size_t got = count < len - pos ? count : len - pos;
			for (size_t i = 0; i < got; i++) {
				if (rle4) {
					PUT(data[pos + i] >> 4);
					PUT(data[pos + i] & 15);
				} else {
					PUT(data[pos + i]);
				}
			}
			pos += got;
			if (got < count)
				break;
			x += b;
			if (pos % 2)
				pos++;
		}
	}
#undef PUT
	if (n < total)
		return aim_error("BMP: not enough image data");
	return AIM_OK;
}

int aim_decode_bmp(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out)
{
	if (len < 18)
		return aim_error("BMP: file is truncated in the header");
	uint32_t offset = le32(data + 10), hsize = le32(data + 14);
	if (hsize != 12 && hsize != 40 && hsize != 64 && hsize != 108 && hsize != 124)
		return aim_error("BMP: unsupported header type (%u)", hsize);
	if (len - 18 < hsize - 4)
		return aim_error("BMP: file is truncated in the header");
	const uint8_t *hd = data + 18;
	size_t pos = 14 + hsize;
	long long w, h;
	int bits, direction = -1, pad;
	uint32_t compression = 0, colors = 0, mask[4] = {0, 0, 0, 0};
	if (hsize == 12) {
		w = le16(hd);
		h = le16(hd + 2);
		bits = (int)le16(hd + 6);
		pad = 3;
	} else {
		w = le32(hd);
		h = le32(hd + 4);
		if (hd[7] == 0xFF) { /* a negative height: rows top-down */
			h = 0x100000000LL - h;
			direction = 1;
		}
		bits = (int)le16(hd + 10);
		compression = le32(hd + 12);
		colors = le32(hd + 28);
		pad = 4;
		if (compression == 3) {
			if (hsize - 4 >= 52) {
				for (int i = 0; i < 4; i++)
					mask[i] = le32(hd + 36 + 4 * i);
			} else {
				if (len - pos < 12)
					return aim_error("BMP: file is truncated in the bitfield masks");
				for (int i = 0; i < 3; i++)
					mask[i] = le32(data + pos + 4 * i);
				pos += 12;
			}
		}
	}
	long long ncolors = colors ? colors : 1LL << (bits < 40 ? bits : 40);
	if (offset == 14 + hsize && bits <= 8)
		offset += (uint32_t)(4 * ncolors);
	aim_pilmode mode;
	rawmode raw;
	switch (bits) {
	case 1: mode = AIM_PM_P; raw = RAW_P1; break;
	case 4: mode = AIM_PM_P; raw = RAW_P4; break;
	case 8: mode = AIM_PM_P; raw = RAW_8; break;
	case 16: mode = AIM_PM_RGB; raw = RAW_BGR15; break;
	case 24: mode = AIM_PM_RGB; raw = RAW_BGR; break;
	case 32: mode = AIM_PM_RGB; raw = RAW_BGRX; break;
	default: return aim_error("BMP: unsupported pixel depth (%d)", bits);
	}
	int rle = 0;
	if (compression == 3) {
		static const struct {
			int bits;
			uint32_t m[4];
			rawmode raw;
		} masks[] = {
			{32, {0xFF0000, 0xFF00, 0xFF, 0}, RAW_BGRX},
			{32, {0xFF000000, 0xFF0000, 0xFF00, 0}, RAW_XBGR},
			{32, {0xFF000000, 0xFF0000, 0xFF00, 0xFF}, RAW_ABGR},
			{32, {0xFF, 0xFF00, 0xFF0000, 0xFF000000}, RAW_RGBA},
			{32, {0xFF0000, 0xFF00, 0xFF, 0xFF000000}, RAW_BGRA},
			{32, {0, 0, 0, 0}, RAW_BGRA},
			{24, {0xFF0000, 0xFF00, 0xFF, 0}, RAW_BGR},
			{16, {0xF800, 0x7E0, 0x1F, 0}, RAW_BGR16},
			{16, {0x7C00, 0x3E0, 0x1F, 0}, RAW_BGR15},
		};
		int found = 0;
		for (size_t i = 0; i < sizeof masks / sizeof *masks && !found; i++)
			if (masks[i].bits == bits && mask[0] == masks[i].m[0] && mask[1] == masks[i].m[1] &&
			    mask[2] == masks[i].m[2] && (bits != 32 || mask[3] == masks[i].m[3])) {
				raw = masks[i].raw;
				found = 1;
			}
		if (!found)
			return aim_error("BMP: unsupported bitfields layout");
	} else if (compression == 1 || compression == 2) {
		rle = (int)compression;
	} else if (compression != 0) {
		return aim_error("BMP: unsupported compression (%u)", compression);
	}
	aim_palette pal;
	aim_palette_ramp(&pal);
	if (mode == AIM_PM_P) {
		if (ncolors <= 0 || ncolors > 65536)
			return aim_error("BMP: unsupported palette size (%lld)", ncolors);
		size_t want = (size_t)pad * ncolors, got = want < len - pos ? want : len - pos;
		const uint8_t *p = data + pos;
		pos += got;
		int grey = 1;
		for (long long i = 0; i < ncolors && grey; i++) {
			unsigned v = ncolors == 2 ? (i ? 255 : 0) : (unsigned)(i & 255);
			size_t at = (size_t)i * pad;
			grey = at + 3 <= got && p[at] == v && p[at + 1] == v && p[at + 2] == v;
		}
		if (grey) {
			mode = ncolors == 2 ? AIM_PM_1 : AIM_PM_L;
			raw = ncolors == 2 ? RAW_1 : RAW_8;
		} else {
			if (got / pad > 256) /* Pillow's putpalette takes 256 at most */
				return aim_error("BMP: invalid palette size (%zu entries)", got / pad);
			for (size_t i = 0; i < 256 && (i + 1) * pad <= got; i++) {
				pal.rgb[i][0] = p[i * pad + 2];
				pal.rgb[i][1] = p[i * pad + 1];
				pal.rgb[i][2] = p[i * pad];
			}
		}
	}
	if (rle && mode != AIM_PM_P && mode != AIM_PM_L)
		return aim_error("BMP: RLE data for a %s image", mode == AIM_PM_1 ? "black and white" : "colour");
	if (aim_image_check_size("BMP", w, h, max_pixels) < 0)
		return AIM_ERR;
	size_t start = offset ? offset : pos;
	if (start > len)
		start = len;
	size_t stride = (size_t)(((w * bits + 31) >> 3) & ~3LL), rowbytes = (size_t)((raw_bits(raw) * w + 7) / 8);
	uint8_t *idx = NULL;
	if (rle) {
		idx = malloc((size_t)(w * h));
		if (!idx)
			return aim_error("out of memory");
		if (expand_rle(data, len, start, rle == 2, w, h, idx) < 0) {
			free(idx);
			return AIM_ERR;
		}
		raw = RAW_8;
		stride = rowbytes = (size_t)w;
	} else {
		/* Pillow maps 8-bit grey and palette files and reads rows at the
		 * file's stride when the whole padded image is there, else its raw
		 * decoder reads rows of max(stride, row bytes), the last without
		 * padding. */
		int mapped = raw == RAW_8 && (size_t)h * stride <= len - start;
		if (!mapped && stride < rowbytes)
			stride = rowbytes;
		if ((size_t)(h - 1) * stride + rowbytes > len - start)
			return aim_error("BMP: image file is truncated");
	}
	const uint8_t *src = idx ? idx : data + start;
	uint8_t *row = malloc((size_t)w * 4);
	if (!row || aim_image_alloc(out, (int)w, (int)h, channels) < 0) {
		free(row);
		free(idx);
		return aim_error("out of memory");
	}
	for (long long r = 0; r < h; r++) {
		long long y = direction < 0 ? h - 1 - r : r;
		unpack_row(raw, src + (size_t)r * stride, (int)w, row);
		aim_pilmode_convert_row(mode == AIM_PM_RGB || mode == AIM_PM_RGBA ? AIM_PM_RGB : mode, &pal,
					row, (int)w, channels, out->px + (size_t)y * w * channels);
	}
	free(row);
	free(idx);
	return AIM_OK;
}
