/* PNG as Pillow 9.4 reads it. Pillow does not use libpng: it walks the
 * chunks itself (PngImagePlugin) and inflates the image data with zlib
 * (ZipDecode), and its rules decide what is accepted, so they are kept
 * here exactly:
 *  - before the image data every chunk's CRC is checked, chunk names must
 *    be four letters, digits or '_', and the chunks Pillow knows are
 *    checked as it checks them (IHDR of 13 bytes with filter method 0,
 *    pHYs 9 bytes, sRGB 1, gAMA 4, cHRM a multiple of 4, tRNS long enough
 *    for the mode; zTXt, iTXt and iCCP with compression method 0 whose
 *    text inflates to at most 1 MiB, at most 64 MiB of text in all; APNG
 *    acTL, fcTL and fdAT of their sizes with their sequence numbers in
 *    order and frames inside the image);
 *  - the image data are the IDAT (or fdAT, DDAT) chunks from the first
 *    one on, CRCs unchecked; a frame control chunk before it makes the
 *    frame's rectangle the decoded region (the rest index/value 0); the
 *    data must give every row (a chunk of another kind or the end of the
 *    file before that is a truncated file), and what follows the last row
 *    in the zlib stream is not read (nor its end or checksum);
 *  - the chunks after the image data, up to IEND (or the next frame of an
 *    animation), are read with the same checks but no CRC; one that is
 *    cut short is an error, a broken chunk header ends the file.
 * libpng only inflates and unfilters: it is given a canonical PNG of the
 * IHDR Pillow read (palette images as grey of the same depth, indices
 * mapped here) and the data chunks with fresh CRCs, through its
 * progressive reader, which is stopped at the last row.
 * Pixels follow Pillow's modes (_MODES): gray 1/2/4/8 bits (scaled to
 * 0..255), gray 16 bits (mode "I": clipped to 0..255), RGB 8/16 (high
 * byte), palette 1/2/4/8 bits (transparency ignored, missing entries a
 * grey ramp), gray+alpha, RGBA (alpha dropped). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <zlib.h>

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

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#define TEXT_CHUNK_MAX (1 << 20)    /* Pillow's MAX_TEXT_CHUNK */
#define TEXT_MEMORY_MAX (64 << 20)  /* MAX_TEXT_MEMORY */

/* What Pillow's PngStream knows after the chunks read so far. */
typedef struct {
	const uint8_t *data;
	size_t len;
	int have_ihdr, mode_ok, interlace;
	uint32_t w, h;
	int depth, ctype;
	const uint8_t *plte;
	size_t nplte;
	long long text_memory;
	int seq_set, frames_set, default_image, bbox_set;
	uint32_t seq, frames, bbox[4];
} pngstate;

enum { CHUNK_DONE, CHUNK_IMAGE_DATA, CHUNK_IEND, CHUNK_UNKNOWN };

static int valid_mode(int depth, int ctype)
{
	switch (ctype) {
	case 0: return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
	case 2: case 4: case 6: return depth == 8 || depth == 16;
	case 3: return depth == 1 || depth == 2 || depth == 4 || depth == 8;
	}
	return 0;
}

/* Python's zlib decompressobj().decompress(in, 1 MiB): 0 and the output
 * length, 1 for a zlib error (Pillow ignores the text), -1 when more than
 * the limit would come out ("Decompressed Data Too Large"). */
static int inflate_text(const uint8_t *in, size_t n, uint8_t **out, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	*out = malloc(TEXT_CHUNK_MAX + 1);
	*outlen = 0;
	if (!*out || inflateInit(&z) != Z_OK) {
		free(*out);
		*out = NULL;
		return 1;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = *out;
	z.avail_out = TEXT_CHUNK_MAX;
	int rc = Z_OK;
	while (rc == Z_OK && z.avail_in > 0 && z.avail_out > 0)
		rc = inflate(&z, Z_SYNC_FLUSH);
	*outlen = TEXT_CHUNK_MAX - z.avail_out;
	int ret = 0;
	if (rc == Z_DATA_ERROR || rc == Z_STREAM_ERROR || rc == Z_MEM_ERROR || rc == Z_NEED_DICT)
		ret = 1;
	else if (rc != Z_STREAM_END && z.avail_out == 0 && z.avail_in > 0)
		ret = -1;
	inflateEnd(&z);
	return ret;
}

/* Python's strict UTF-8 decoding: the number of code points, or -1. */
static long utf8_chars(const uint8_t *s, size_t n)
{
	long count = 0;
	for (size_t i = 0; i < n; count++) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			k = 1, cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			k = 2, cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			k = 3, cp = c & 0x07;
		} else {
			return -1;
		}
		if (n - i <= k)
			return -1;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return -1;
			cp = cp << 6 | (s[i + j] & 0x3F);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return -1;
		i += k + 1;
	}
	return count;
}

static int text_memory(pngstate *s, long long n)
{
	s->text_memory += n;
	if (s->text_memory > TEXT_MEMORY_MAX)
		return aim_error("PNG: too much memory used in text chunks");
	return AIM_OK;
}

/* A compressed text (zTXt, iTXt, iCCP): its inflated length, or an error
 * past the limit; *ok = 0 for a zlib error (Pillow then drops the text). */
static int inflated_len(const uint8_t *in, size_t n, const char *what, size_t *len, uint8_t **out, int *ok)
{
	int rc = inflate_text(in, n, out, len);
	*ok = rc == 0;
	if (rc < 0) {
		free(*out);
		*out = NULL;
		return aim_error("PNG: %s: decompressed data too large", what);
	}
	return AIM_OK;
}

/* One chunk's handler, as PngStream.chunk_* (data at pos, length bytes).
 * Returns the CHUNK_* outcome or AIM_ERR. */
static int handle_chunk(pngstate *s, const uint8_t *cid, size_t pos, uint32_t length)
{
	const uint8_t *d = s->data + pos;
	if (!memcmp(cid, "IDAT", 4))
		return CHUNK_IMAGE_DATA;
	if (!memcmp(cid, "IEND", 4))
		return CHUNK_IEND;
	int known = !memcmp(cid, "IHDR", 4) || !memcmp(cid, "PLTE", 4) || !memcmp(cid, "tRNS", 4) ||
		    !memcmp(cid, "gAMA", 4) || !memcmp(cid, "cHRM", 4) || !memcmp(cid, "sRGB", 4) ||
		    !memcmp(cid, "pHYs", 4) || !memcmp(cid, "tEXt", 4) || !memcmp(cid, "zTXt", 4) ||
		    !memcmp(cid, "iTXt", 4) || !memcmp(cid, "eXIf", 4) || !memcmp(cid, "acTL", 4) ||
		    !memcmp(cid, "fcTL", 4) || !memcmp(cid, "fdAT", 4) || !memcmp(cid, "iCCP", 4);
	if (!memcmp(cid, "fdAT", 4)) {
		if (length < 4)
			return aim_error("PNG: APNG contains truncated fdAT chunk");
		if (s->len - pos < 4)
			return aim_error("PNG: file is truncated in a chunk");
		uint32_t seq = be32(d);
		if (!s->seq_set || s->seq != seq - 1)
			return aim_error("PNG: APNG contains frame sequence errors");
		s->seq = seq;
		return CHUNK_IMAGE_DATA;
	}
	/* every other handler reads the whole chunk first */
	if (length > s->len - pos)
		return aim_error("PNG: file is truncated in a %.4s chunk", (const char *)cid);
	if (!known)
		return CHUNK_UNKNOWN;
	if (!memcmp(cid, "IHDR", 4)) {
		if (length < 13)
			return aim_error("PNG: truncated IHDR chunk");
		s->have_ihdr = 1;
		s->w = be32(d);
		s->h = be32(d + 4);
		if (valid_mode(d[8], d[9])) {
			s->depth = d[8];
			s->ctype = d[9];
			s->mode_ok = 1;
		}
		if (d[12])
			s->interlace = 1;
		if (d[11])
			return aim_error("PNG: unknown filter category");
	} else if (!memcmp(cid, "PLTE", 4)) {
		if (s->mode_ok && s->ctype == 3) {
			s->plte = d;
			s->nplte = length;
		}
	} else if (!memcmp(cid, "tRNS", 4)) {
		if (s->mode_ok && s->ctype == 0 && length < 2)
			return aim_error("PNG: tRNS chunk too short");
		if (s->mode_ok && s->ctype == 2 && length < 6)
			return aim_error("PNG: tRNS chunk too short");
	} else if (!memcmp(cid, "gAMA", 4)) {
		if (length < 4)
			return aim_error("PNG: gAMA chunk too short");
	} else if (!memcmp(cid, "cHRM", 4)) {
		if (length % 4)
			return aim_error("PNG: cHRM chunk of %u bytes", length);
	} else if (!memcmp(cid, "sRGB", 4)) {
		if (length < 1)
			return aim_error("PNG: truncated sRGB chunk");
	} else if (!memcmp(cid, "pHYs", 4)) {
		if (length < 9)
			return aim_error("PNG: truncated pHYs chunk");
	} else if (!memcmp(cid, "tEXt", 4)) {
		const uint8_t *z = memchr(d, 0, length);
		if (z && z > d && text_memory(s, (long long)(d + length - z - 1)) < 0)
			return AIM_ERR;
	} else if (!memcmp(cid, "zTXt", 4)) {
		const uint8_t *z = memchr(d, 0, length);
		size_t klen = z ? (size_t)(z - d) : length;
		const uint8_t *v = z ? z + 1 : d + length;
		size_t vlen = (size_t)(d + length - v);
		if (vlen && v[0] != 0)
			return aim_error("PNG: unknown compression method %d in zTXt chunk", v[0]);
		size_t n = 0;
		uint8_t *out = NULL;
		int ok;
		if (inflated_len(vlen ? v + 1 : v, vlen ? vlen - 1 : 0, "zTXt", &n, &out, &ok) < 0)
			return AIM_ERR;
		free(out);
		if (klen && text_memory(s, ok ? (long long)n : 0) < 0)
			return AIM_ERR;
	} else if (!memcmp(cid, "iTXt", 4)) {
		const uint8_t *z = memchr(d, 0, length);
		if (!z || (size_t)(d + length - z - 1) < 2)
			return CHUNK_DONE;
		uint8_t cf = z[1], cm = z[2];
		const uint8_t *r = z + 3, *end = d + length;
		const uint8_t *z1 = memchr(r, 0, (size_t)(end - r));
		const uint8_t *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(end - z1 - 1)) : NULL;
		if (!z2)
			return CHUNK_DONE;
		const uint8_t *v = z2 + 1;
		size_t vlen = (size_t)(end - v);
		uint8_t *out = NULL;
		if (cf) {
			if (cm)
				return CHUNK_DONE;
			int ok;
			if (inflated_len(v, vlen, "iTXt", &vlen, &out, &ok) < 0)
				return AIM_ERR;
			if (!ok) {
				free(out);
				return CHUNK_DONE;
			}
			v = out;
		}
		long chars = utf8_chars(v, vlen);
		if (chars >= 0 && (utf8_chars(r, (size_t)(z1 - r)) < 0 || utf8_chars(z1 + 1, (size_t)(z2 - z1 - 1)) < 0))
			chars = -1;
		free(out);
		if (chars >= 0 && text_memory(s, chars) < 0)
			return AIM_ERR;
	} else if (!memcmp(cid, "iCCP", 4)) {
		if (!length)
			return aim_error("PNG: empty iCCP chunk");
		const uint8_t *z = memchr(d, 0, length);
		long i = z ? (long)(z - d) : (long)length - 1; /* Python's s[-1] */
		if (d[i])
			return aim_error("PNG: unknown compression method %d in iCCP chunk", d[i]);
		size_t from = z ? (size_t)i + 2 : 1, n;
		uint8_t *out = NULL;
		int ok;
		if (inflated_len(d + (from < length ? from : length), from < length ? length - from : 0, "iCCP",
				 &n, &out, &ok) < 0)
			return AIM_ERR;
		free(out);
	} else if (!memcmp(cid, "acTL", 4)) {
		if (length < 8)
			return aim_error("PNG: APNG contains truncated acTL chunk");
		uint32_t n = be32(d);
		if (s->frames_set)
			s->frames_set = 0; /* two acTL: "Invalid APNG", a still image */
		else if (n != 0 && n <= 0x80000000u) {
			s->frames_set = 1;
			s->frames = n;
		}
	} else if (!memcmp(cid, "fcTL", 4)) {
		if (length < 26)
			return aim_error("PNG: APNG contains truncated fcTL chunk");
		uint32_t seq = be32(d);
		if ((!s->seq_set && seq != 0) || (s->seq_set && s->seq != seq - 1))
			return aim_error("PNG: APNG contains frame sequence errors");
		s->seq_set = 1;
		s->seq = seq;
		uint64_t fw = be32(d + 4), fh = be32(d + 8), px = be32(d + 12), py = be32(d + 16);
		if (!s->have_ihdr)
			return aim_error("PNG: fcTL before IHDR");
		if (px + fw > s->w || py + fh > s->h)
			return aim_error("PNG: APNG contains invalid frames");
		s->bbox_set = 1;
		s->bbox[0] = (uint32_t)px;
		s->bbox[1] = (uint32_t)py;
		s->bbox[2] = (uint32_t)(px + fw);
		s->bbox[3] = (uint32_t)(py + fh);
	}
	return CHUNK_DONE;
}

/* A chunk header at q: 0 with *cid and *length, -1 when it cannot be read
 * (Pillow's struct.error or SyntaxError). */
static int chunk_header(const pngstate *s, size_t q, const uint8_t **cid, uint32_t *length)
{
	if (q > s->len || s->len - q < 8)
		return -1;
	*length = be32(s->data + q);
	*cid = s->data + q + 4;
	for (int i = 0; i < 4; i++) {
		uint8_t c = (*cid)[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return -1;
	}
	return 0;
}

/* ---- the image data, through libpng's progressive reader ------------------ */

typedef struct {
	jmp_buf jump;
	char msg[200];
	int done;
	png_layout *L;
	int bw, bh, x0, y0, interlaced, rawbpp;
	long long rows_left;
	int pass, prow;
	uint8_t *raw;      /* interlaced: the whole region's samples */
	aim_image *out;
} pngfeed;

static void feed_error(png_structp png, png_const_charp msg)
{
	pngfeed *f = png_get_error_ptr(png);
	snprintf(f->msg, sizeof f->msg, "%s", msg);
	longjmp(f->jump, 1);
}

static void feed_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void on_info(png_structp png, png_infop info)
{
	pngfeed *f = png_get_progressive_ptr(png);
	if (f->L->depth < 8)
		png_set_packing(png);
	png_read_update_info(png, info);
}

static void on_row(png_structp png, png_bytep row, png_uint_32 row_num, int pass)
{
	pngfeed *f = png_get_progressive_ptr(png);
	(void)row_num;
	if (!row)
		return;
	size_t stride = (size_t)f->out->w * f->out->c;
	if (!f->interlaced) {
		png_convert_row(f->L, row, f->bw, f->out->px + (size_t)(f->y0 + f->prow) * stride + (size_t)f->x0 * f->out->c);
		f->prow++;
	} else {
		if (pass != f->pass) {
			f->pass = pass;
			f->prow = 0;
		}
		int y = (int)(f->prow * PNG_PASS_ROW_OFFSET(pass) + PNG_PASS_START_ROW(pass));
		int cols = (int)PNG_PASS_COLS(f->bw, pass);
		for (int c = 0; c < cols; c++) {
			int x = (int)(c * PNG_PASS_COL_OFFSET(pass) + PNG_PASS_START_COL(pass));
			memcpy(f->raw + ((size_t)y * f->bw + x) * f->rawbpp, row + (size_t)c * f->rawbpp, (size_t)f->rawbpp);
		}
		f->prow++;
	}
	if (--f->rows_left == 0) { /* Pillow's decoder stops here */
		f->done = 1;
		longjmp(f->jump, 1);
	}
}

static void feed(png_structp png, png_infop info, const void *p, size_t n)
{
	png_process_data(png, info, (png_bytep)p, n);
}

static void feed_chunk(png_structp png, png_infop info, const char *kind, const uint8_t *p, size_t n)
{
	uint8_t head[8] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	memcpy(head + 4, kind, 4);
	uLong crc = crc32(crc32(0, (const Bytef *)kind, 4), p, (uInt)n);
	uint8_t tail[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
	feed(png, info, head, 8);
	if (n)
		feed(png, info, p, n);
	feed(png, info, tail, 4);
}

static int channels_of(int ctype)
{
	return ctype == 2 ? 3 : ctype == 4 ? 2 : ctype == 6 ? 4 : 1;
}

int aim_decode_png(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out)
{
	pngstate s;
	memset(&s, 0, sizeof s);
	s.data = data;
	s.len = len;
	/* ---- _open: the chunks up to the image data, CRCs checked */
	size_t q = 8, dpos = 0;
	uint32_t dlen = 0;
	for (;;) {
		const uint8_t *cid;
		uint32_t length;
		if (chunk_header(&s, q, &cid, &length) < 0)
			return aim_error("PNG: broken PNG file (chunk header at byte %zu)", q);
		size_t pos = q + 8;
		int rc = handle_chunk(&s, cid, pos, length);
		if (rc < 0)
			return AIM_ERR;
		if (rc == CHUNK_IEND)
			return aim_error("PNG: no image data before IEND");
		if (rc == CHUNK_IMAGE_DATA) {
			int fd = !memcmp(cid, "fdAT", 4);
			dpos = pos + (fd ? 4 : 0);
			dlen = length - (fd ? 4 : 0);
			if (!fd && s.frames_set && !s.bbox_set)
				s.default_image = 1;
			q = pos;
			break;
		}
		if (rc == CHUNK_UNKNOWN && length > len - pos)
			return aim_error("PNG: file is truncated in a chunk");
		if (len - pos - length < 4)
			return aim_error("PNG: broken PNG file (incomplete checksum in %.4s)", (const char *)cid);
		uLong crc = crc32(crc32(0, cid, 4), data + pos, (uInt)length);
		if (crc != be32(data + pos + length))
			return aim_error("PNG: broken PNG file (bad header checksum in %.4s)", (const char *)cid);
		q = pos + length + 4;
	}
	if (!s.have_ihdr || !s.mode_ok)
		return aim_error("PNG: no valid IHDR before the image data");
	if (aim_image_check_size("PNG", s.w, s.h, max_pixels) < 0)
		return AIM_ERR;
	if (s.mode_ok && s.ctype == 3 && s.nplte / 3 > 256)
		return aim_error("PNG: invalid palette size");
	uint32_t x0 = 0, y0 = 0, bw = s.w, bh = s.h;
	if (s.bbox_set) {
		x0 = s.bbox[0];
		y0 = s.bbox[1];
		bw = s.bbox[2] - x0;
		bh = s.bbox[3] - y0;
		if (!bw || !bh)
			return aim_error("PNG: empty frame");
	}
	int animated = (s.frames_set ? (long long)s.frames : 1) + s.default_image > 1;

	png_layout *L = calloc(1, sizeof *L);
	pngfeed *f = calloc(1, sizeof *f);
	if (!L || !f || aim_image_alloc(out, (int)s.w, (int)s.h, channels) < 0) {
		free(L);
		free(f);
		aim_image_free(out);
		return aim_error("out of memory");
	}
	L->ctype = s.ctype;
	L->depth = s.depth;
	L->channels = channels;
	for (int i = 0; i < 256; i++)
		L->pal[i][0] = L->pal[i][1] = L->pal[i][2] = (uint8_t)i;
	for (size_t i = 0; i < s.nplte / 3 && i < 256; i++)
		memcpy(L->pal[i], s.plte + 3 * i, 3);
	f->L = L;
	f->out = out;
	f->bw = (int)bw;
	f->bh = (int)bh;
	f->x0 = (int)x0;
	f->y0 = (int)y0;
	f->interlaced = s.interlace;
	f->rawbpp = channels_of(s.ctype) * (s.depth == 16 ? 2 : 1);
	f->pass = -1;
	if (s.interlace) {
		for (int p = 0; p < 7; p++)
			if (PNG_PASS_COLS(bw, p) > 0)
				f->rows_left += PNG_PASS_ROWS(bh, p);
	} else {
		f->rows_left = bh;
	}
	/* outside the frame: samples 0 (Pillow's new image) */
	{
		uint8_t *zero = calloc((size_t)s.w, 8);
		if (!zero) {
			free(L);
			free(f);
			aim_image_free(out);
			return aim_error("out of memory");
		}
		for (uint32_t y = 0; y < s.h; y++)
			png_convert_row(L, zero, (int)s.w, out->px + (size_t)y * s.w * channels);
		free(zero);
	}
	if (s.interlace) {
		f->raw = calloc((size_t)bw * bh, (size_t)f->rawbpp);
		if (!f->raw) {
			free(L);
			free(f);
			aim_image_free(out);
			return aim_error("out of memory");
		}
	}
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, f, feed_error, feed_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	volatile size_t cur_end = dpos + dlen, at = dpos;
	volatile uint32_t cur_len = dlen;
	volatile int truncated = 0;
	if (!png || !info) {
		png_destroy_read_struct(&png, &info, NULL);
		snprintf(f->msg, sizeof f->msg, "cannot start libpng");
		goto fail;
	}
	if (setjmp(f->jump)) {
		if (f->done)
			goto decoded;
		png_destroy_read_struct(&png, &info, NULL);
		goto fail;
	}
	png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
	png_set_progressive_read_fn(png, f, on_info, on_row, NULL);
	{
		uint8_t ihdr[13];
		uint32_t v[2] = {bw, bh};
		for (int i = 0; i < 2; i++) {
			ihdr[4 * i] = (uint8_t)(v[i] >> 24);
			ihdr[4 * i + 1] = (uint8_t)(v[i] >> 16);
			ihdr[4 * i + 2] = (uint8_t)(v[i] >> 8);
			ihdr[4 * i + 3] = (uint8_t)v[i];
		}
		ihdr[8] = (uint8_t)s.depth;
		ihdr[9] = (uint8_t)(s.ctype == 3 ? 0 : s.ctype); /* indices as grey */
		ihdr[10] = ihdr[11] = 0;
		ihdr[12] = (uint8_t)s.interlace;
		feed(png, info, "\x89PNG\r\n\x1a\n", 8);
		feed_chunk(png, info, "IHDR", ihdr, 13);
	}
	/* load_read: this chunk's data, then IDAT/DDAT/fdAT chunks while the
	 * decoder wants more */
	for (;;) {
		size_t avail = at < len ? len - at : 0, n = cur_len < avail ? cur_len : avail;
		cur_end = at + cur_len;
		feed_chunk(png, info, "IDAT", data + at, n);
		const uint8_t *cid;
		uint32_t length;
		if (n < cur_len || chunk_header(&s, cur_end + 4, &cid, &length) < 0) {
			truncated = 1;
			break;
		}
		size_t pos = cur_end + 12;
		if (!memcmp(cid, "fdAT", 4)) {
			if (handle_chunk(&s, cid, pos, length) < 0) {
				png_destroy_read_struct(&png, &info, NULL);
				free(f->raw);
				free(f);
				free(L);
				aim_image_free(out);
				return AIM_ERR;
			}
			at = pos + 4;
			cur_len = length - 4;
		} else if (!memcmp(cid, "IDAT", 4) || !memcmp(cid, "DDAT", 4)) {
			at = pos;
			cur_len = length;
		} else {
			truncated = 1;
			break;
		}
	}
	png_destroy_read_struct(&png, &info, NULL);
	snprintf(f->msg, sizeof f->msg, "%s", truncated ? "file is truncated" : "no image data");
	goto fail;

decoded:
	png_destroy_read_struct(&png, &info, NULL);
	if (s.interlace)
		for (uint32_t y = 0; y < bh; y++)
			png_convert_row(L, f->raw + (size_t)y * bw * f->rawbpp, (int)bw,
					out->px + ((size_t)(y0 + y) * s.w + x0) * channels);
	free(f->raw);
	free(f);
	free(L);
	/* ---- load_end: the chunks after the image data, no CRCs */
	q = cur_end;
	for (;;) {
		const uint8_t *cid;
		uint32_t length;
		if (chunk_header(&s, q + 4, &cid, &length) < 0)
			break;
		if (!memcmp(cid, "IEND", 4) || (!memcmp(cid, "fcTL", 4) && animated))
			break;
		size_t pos = q + 12;
		int rc = handle_chunk(&s, cid, pos, length);
		if (rc < 0) {
			aim_image_free(out);
			return AIM_ERR;
		}
		if (length > len - pos) {
			aim_image_free(out);
			return aim_error("PNG: file is truncated in a %.4s chunk after the image data", (const char *)cid);
		}
		q = pos + length;
	}
	return AIM_OK;

fail:
	free(f->raw);
	aim_error("PNG: %s", f->msg);
	free(f);
	free(L);
	aim_image_free(out);
	return AIM_ERR;
}
