/* The first frame of a GIF, as Pillow 9.4's GifImagePlugin opens it and
 * its own LZW decoder (not giflib's) fills it; the rules below decide
 * what is accepted, so they follow Pillow's behaviour, not the GIF spec:
 *  - blocks before the first image descriptor: extensions (a graphic
 *    control extension needs 3 bytes, 4 with the transparency flag; an
 *    application extension needs a first sub-block, NETSCAPE2.0 a second),
 *    unknown bytes skipped one by one; none before ';' or the end is an
 *    error;
 *  - the canvas is the logical screen grown to hold the frame; a frame of
 *    width or height 0 is an error; the canvas starts as the transparent
 *    index (graphic control extension) or 0;
 *  - pixels are the palette of the frame (local, else global) with
 *    Pillow's grey ramp for missing entries, or grey without a palette;
 *  - the LZW stream is read as Pillow reads it: sub-blocks decoded only
 *    when whole, a zero-length sub-block is not the end, a code past the
 *    table or a first code past "clear" is an error, and the frame is
 *    done when its last pixel is written. An end code before that leaves
 *    Pillow asking for more data; fed in 64 KiB reads (ImageFile.load),
 *    running out of data is "image file is truncated". */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "err.h"

#define LZW_TABLE 4096
#define READ_BLOCK 65536 /* ImageFile.MAXBLOCK */

enum { LZW_DONE = -1, LZW_BROKEN = -2, LZW_TRUNCATED = -3 };

typedef struct {
	int bits, clear, end, next, codesize, codemask;
	int phase; /* 1: start a table, 2: first code after a clear, 3: codes */
	uint32_t bitbuf;
	int bitcount, blockleft;
	uint8_t suffix[LZW_TABLE];
	uint16_t prefix[LZW_TABLE];
	uint8_t lastdata;
	int lastcode;
	uint8_t stack[LZW_TABLE]; /* a string's tail, filled from the right */
	int sp;
	/* where the next pixel goes */
	uint8_t *px;
	int stride, x0, y0, xsize, ysize, x, y, step, pass;
} lzw;

/* Advance to the next row (interlaced: the next row of the pass, then the
 * next pass). 1 when the frame is complete. */
static int next_row(lzw *s)
{
	s->x = 0;
	s->y += s->step;
	while (s->y >= s->ysize) {
		switch (s->pass) {
		case 1: s->y = 4; s->pass = 2; break;
		case 2: s->step = 4; s->y = 2; s->pass = 3; break;
		case 3: s->step = 2; s->y = 1; s->pass = 0; break;
		default: return 1;
		}
	}
	return 0;
}

/* Decode from buf (n bytes); returns the bytes consumed when it needs
 * more, LZW_DONE when the frame is complete, LZW_BROKEN on bad codes. */
static long lzw_decode(lzw *s, const uint8_t *buf, size_t n)
{
	const uint8_t *p = buf, *endp = buf + n;
	for (;;) {
		const uint8_t *str;
		int len;
		if (s->phase == 1) {
			s->next = s->clear + 2;
			s->codesize = s->bits + 1;
			s->codemask = (1 << s->codesize) - 1;
			s->sp = LZW_TABLE;
			s->phase = 2;
		}
		if (s->sp < LZW_TABLE) { /* the rest of the last string */
			str = s->stack + s->sp;
			len = LZW_TABLE - s->sp;
			s->sp = LZW_TABLE;
		} else {
			while (s->bitcount < s->codesize) {
				if (s->blockleft > 0) {
					s->bitbuf |= (uint32_t)*p++ << s->bitcount;
					s->bitcount += 8;
					s->blockleft--;
				} else { /* a sub-block is decoded only when whole */
					if (p >= endp || (size_t)(endp - p) < (size_t)*p + 1)
						return (long)(p - buf);
					s->blockleft = *p++;
				}
			}
			int c = (int)(s->bitbuf & (uint32_t)s->codemask);
			s->bitbuf >>= s->codesize;
			s->bitcount -= s->codesize;
			if (c == s->clear) {
				if (s->phase != 2)
					s->phase = 1;
				continue;
			}
			if (c == s->end)
				return (long)(p - buf);
			if (s->phase == 2) {
				if (c > s->clear)
					return LZW_BROKEN;
				s->lastdata = (uint8_t)c;
				s->lastcode = c;
				s->phase = 3;
			} else {
				int code = c;
				if (c > s->next)
					return LZW_BROKEN;
				if (c == s->next) { /* the string being defined */
					if (s->sp <= 0)
						return LZW_BROKEN;
					s->stack[--s->sp] = s->lastdata;
					c = s->lastcode;
				}
				while (c >= s->clear) {
					if (s->sp <= 0 || c >= LZW_TABLE)
						return LZW_BROKEN;
					s->stack[--s->sp] = s->suffix[c];
					c = s->prefix[c];
				}
				s->lastdata = (uint8_t)c;
				if (s->next < LZW_TABLE) { /* a full table stays as it is */
					s->suffix[s->next] = (uint8_t)c;
					s->prefix[s->next] = (uint16_t)s->lastcode;
					if (s->next == s->codemask && s->codesize < 12) {
						s->codesize++;
						s->codemask = (1 << s->codesize) - 1;
					}
					s->next++;
				}
				s->lastcode = code;
			}
			str = &s->lastdata; /* the first byte now, the rest next round */
			len = 1;
		}
		if (s->y >= s->ysize)
			return LZW_BROKEN;
		for (int i = 0; i < len; i++) {
			s->px[(size_t)(s->y0 + s->y) * s->stride + s->x0 + s->x] = str[i];
			if (++s->x >= s->xsize && next_row(s))
				return LZW_DONE;
		}
	}
}

static unsigned le16(const uint8_t *p)
{
	return p[0] | (unsigned)p[1] << 8;
}

typedef struct {
	const uint8_t *p;
	size_t len, pos;
} reader;

/* Pillow's GifImageFile.data(): one sub-block, NULL for the terminator
 * (or the end of the file); *n its length, possibly short at the end. */
static const uint8_t *sub_block(reader *r, size_t *n)
{
	if (r->pos >= r->len || !r->p[r->pos]) {
		if (r->pos < r->len)
			r->pos++;
		*n = 0;
		return NULL;
	}
	size_t want = r->p[r->pos++];
	const uint8_t *b = r->p + r->pos;
	*n = want < r->len - r->pos ? want : r->len - r->pos;
	r->pos += *n;
	return b;
}

static void skip_sub_blocks(reader *r)
{
	size_t n;
	while (sub_block(r, &n))
		;
}

int aim_decode_gif(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out)
{
	if (len < 13)
		return aim_error("GIF: not a GIF file");
	reader r = {data, len, 13};
	long long w = le16(data + 6), h = le16(data + 8);
	aim_palette global, pal;
	int nglobal = 0, has_trns = 0, trns = 0;
	aim_palette_ramp(&global);
	if (data[10] & 128) {
		nglobal = 1 << ((data[10] & 7) + 1);
		if (len - r.pos < (size_t)nglobal * 3)
			return aim_error("GIF: file is truncated in the global palette");
		memcpy(global.rgb, data + r.pos, (size_t)nglobal * 3);
		r.pos += (size_t)nglobal * 3;
	}
	/* Blocks up to the first image descriptor. */
	for (;;) {
		if (r.pos >= len || data[r.pos] == ';')
			return aim_error("GIF: no image in the file");
		uint8_t s = data[r.pos++];
		if (s == '!') {
			if (r.pos >= len)
				return aim_error("GIF: file is truncated in an extension");
			uint8_t label = data[r.pos++];
			size_t n;
			const uint8_t *b = sub_block(&r, &n);
			if (label == 0xF9) {
				if (!b || n < 3 || ((b[0] & 1) && n < 4))
					return aim_error("GIF: graphic control extension too short");
				if (b[0] & 1) {
					has_trns = 1;
					trns = b[3];
				}
			} else if (label == 0xFE) {
				while (b)
					b = sub_block(&r, &n);
				continue;
			} else if (label == 0xFF) {
				if (!b)
					return aim_error("GIF: empty application extension");
				if (n >= 11 && !memcmp(b, "NETSCAPE2.0", 11) && !sub_block(&r, &n))
					return aim_error("GIF: NETSCAPE2.0 extension without data");
			}
			skip_sub_blocks(&r);
		} else if (s == ',') {
			break;
		} /* anything else is skipped, as Pillow does */
	}
	if (len - r.pos < 9)
		return aim_error("GIF: file is truncated in the image descriptor");
	const uint8_t *d = data + r.pos;
	r.pos += 9;
	long long x0 = le16(d), y0 = le16(d + 2), fw = le16(d + 4), fh = le16(d + 6);
	if (x0 + fw > w)
		w = x0 + fw;
	if (y0 + fh > h)
		h = y0 + fh;
	int flags = d[8];
	memcpy(&pal, &global, sizeof pal);
	if (flags & 128) {
		int n = 1 << ((flags & 7) + 1);
		if (len - r.pos < (size_t)n * 3)
			return aim_error("GIF: file is truncated in the local palette");
		aim_palette_ramp(&pal);
		memcpy(pal.rgb, data + r.pos, (size_t)n * 3);
		r.pos += (size_t)n * 3;
	}
	if (r.pos >= len)
		return aim_error("GIF: file is truncated before the image data");
	int bits = data[r.pos++];
	if (aim_image_check_size("GIF", w, h, max_pixels) < 0)
		return AIM_ERR;
	if (fw <= 0 || fh <= 0)
		return aim_error("GIF: frame of size %lldx%lld", fw, fh);
	if (bits > 12)
		return aim_error("GIF: LZW code size %d is over 12", bits);
	lzw *s = calloc(1, sizeof *s);
	uint8_t *canvas = malloc((size_t)w * h);
	if (!s || !canvas) {
		free(s);
		free(canvas);
		return aim_error("out of memory");
	}
	memset(canvas, has_trns ? trns : 0, (size_t)w * h);
	s->bits = bits;
	s->clear = 1 << bits;
	s->end = s->clear + 1;
	s->phase = 1;
	s->px = canvas;
	s->stride = (int)w;
	s->x0 = (int)x0;
	s->y0 = (int)y0;
	s->xsize = (int)fw;
	s->ysize = (int)fh;
	s->pass = flags & 64 ? 1 : 0;
	s->step = flags & 64 ? 8 : 1;
	/* ImageFile.load: read 64 KiB more, decode what is unconsumed, repeat. */
	size_t done = r.pos, have = r.pos;
	long rc;
	for (;;) {
		if (have >= len) {
			rc = LZW_TRUNCATED;
			break;
		}
		have = have + READ_BLOCK < len ? have + READ_BLOCK : len;
		rc = lzw_decode(s, data + done, have - done);
		if (rc < 0)
			break;
		done += (size_t)rc;
	}
	free(s);
	if (rc != LZW_DONE) {
		free(canvas);
		return aim_error(rc == LZW_BROKEN ? "GIF: broken LZW data" : "GIF: image file is truncated");
	}
	if (aim_image_alloc(out, (int)w, (int)h, channels) < 0) {
		free(canvas);
		return AIM_ERR;
	}
	for (long long y = 0; y < h; y++)
		aim_pilmode_convert_row(AIM_PM_P, &pal, canvas + y * w, (int)w, channels,
					out->px + (size_t)y * w * channels);
	free(canvas);
	return AIM_OK;
}
