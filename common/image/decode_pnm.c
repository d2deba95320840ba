/* Netpbm images (PBM, PGM, PPM; raw and plain) as Pillow 9.4's
 * PpmImagePlugin reads them, with its own quirks kept because they decide
 * what is accepted:
 *  - the magic number is what precedes the first whitespace (at most 6
 *    bytes): P1..P6, and Pillow's own P0CMYK, PyP, PyRGBA, PyCMYK;
 *  - header tokens are at most 10 characters, parsed as Python's int()
 *    (sign, digits, single underscores between digits); a comment runs
 *    from '#' to the end of its line and does not end a token;
 *  - maxval 1..65535; PGM with maxval > 255 is mode I (scaled to 0..65535,
 *    which convert() then clips to 0..255); other maxvals than 255 (and
 *    65535 for PGM) are rescaled with Python's round(v / maxval * top);
 *  - plain data: the same tokens; a value above maxval, a token that is no
 *    integer or too long, or too few values are errors, except that a
 *    last token not followed by whitespace is repeated to fill the image
 *    (Pillow's half-token at the end of the file); plain PBM digits
 *    need no separators and every character of the block Pillow reads
 *    (1 MiB) must be a 0 or 1;
 *  - raw data shorter than the image is an error, trailing bytes are not.
 * PyP has no palette in the file: Pillow's palette is its grey ramp. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "err.h"

#define SAFEBLOCK (1 << 20) /* what Pillow's plain decoders read at once */

typedef struct {
	const uint8_t *p;
	size_t len, pos;
	int at_end; /* the last token was ended by the end of the file */
} cursor;

static int is_ws(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Skip a comment whose '#' was just read: through the first CR or LF. */
static void skip_comment(cursor *c)
{
	while (c->pos < c->len) {
		uint8_t ch = c->p[c->pos++];
		if (ch == '\r' || ch == '\n')
			break;
	}
}

/* One token: whitespace before it skipped, ended by whitespace (consumed)
 * or the end; comments vanish. 0: a token in tok (len *n, possibly > 10
 * to say "too long"), -1: nothing before the end. */
static int next_token(cursor *c, char *tok, int *n)
{
	*n = 0;
	c->at_end = 0;
	while (*n <= 10) {
		if (c->pos >= c->len) {
			c->at_end = 1;
			break;
		}
		uint8_t ch = c->p[c->pos++];
		if (is_ws(ch)) {
			if (!*n)
				continue;
			break;
		}
		if (ch == '#') {
			skip_comment(c);
			continue;
		}
		tok[(*n)++] = (char)ch;
	}
	return *n ? 0 : -1;
}

/* Python's int() of an ASCII token: [+-]digits, '_' only between digits. */
static int py_int(const char *t, int n, long long *v)
{
	int i = 0, neg = 0, digits = 0;
	long long x = 0;
	if (i < n && (t[i] == '+' || t[i] == '-'))
		neg = t[i++] == '-';
	for (; i < n; i++) {
		if (t[i] == '_') {
			if (!digits || i + 1 >= n || t[i + 1] < '0' || t[i + 1] > '9')
				return -1;
			continue;
		}
		if (t[i] < '0' || t[i] > '9')
			return -1;
		x = x * 10 + (t[i] - '0');
		digits++;
	}
	if (!digits)
		return -1;
	*v = neg ? -x : x;
	return 0;
}

static int header_int(cursor *c, long long *v)
{
	char tok[12];
	int n;
	if (next_token(c, tok, &n) < 0)
		return aim_error("PPM: reached the end of the file while reading the header");
	if (n > 10)
		return aim_error("PPM: token too long in the file header");
	if (py_int(tok, n, v) < 0)
		return aim_error("PPM: header value '%.*s' is not an integer", n, tok);
	return AIM_OK;
}

/* Python's round(v / maxval * top): half to even on the double. */
static long long rescale(long long v, long long maxval, long long top)
{
	return (long long)nearbyint((double)v / (double)maxval * (double)top);
}

typedef struct {
	aim_pilmode mode;
	int bands;   /* samples per pixel */
	int ival;    /* mode I: 4-byte samples scaled to 0..65535 */
} layout;

static void store(uint8_t *row, const layout *L, int i, long long v)
{
	if (L->ival) {
		int32_t s = (int32_t)v;
		memcpy(row + 4 * i, &s, 4);
	} else {
		row[i] = (uint8_t)(v & 255); /* Python's o8() */
	}
}

int aim_decode_pnm(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out)
{
	static const struct {
		const char *magic;
		aim_pilmode mode;
		int bands;
	} modes[] = {
		{"P1", AIM_PM_1, 1}, {"P2", AIM_PM_L, 1}, {"P3", AIM_PM_RGB, 3},
		{"P4", AIM_PM_1, 1}, {"P5", AIM_PM_L, 1}, {"P6", AIM_PM_RGB, 3},
		{"P0CMYK", AIM_PM_CMYK, 4}, {"PyP", AIM_PM_P, 1}, {"PyRGBA", AIM_PM_RGBA, 4},
		{"PyCMYK", AIM_PM_CMYK, 4},
	};
	cursor c = {data, len, 0, 0};
	char magic[7];
	int mlen = 0;
	while (mlen < 6 && c.pos < len) {
		uint8_t ch = data[c.pos++];
		if (is_ws(ch))
			break;
		magic[mlen++] = (char)ch;
	}
	magic[mlen] = 0;
	int k = -1;
	for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
		if (!strcmp(magic, modes[i].magic))
			k = (int)i;
	if (k < 0)
		return aim_error("PPM: not a PPM file (magic '%s')", magic);
	int plain = magic[1] >= '1' && magic[1] <= '3', bitonal = modes[k].mode == AIM_PM_1;
	layout L = {modes[k].mode, modes[k].bands, 0};
	long long w, h, maxval = 255;
	if (header_int(&c, &w) < 0 || header_int(&c, &h) < 0)
		return AIM_ERR;
	if (!bitonal) {
		if (header_int(&c, &maxval) < 0)
			return AIM_ERR;
		if (maxval <= 0 || maxval >= 65536)
			return aim_error("PPM: maxval must be greater than 0 and less than 65536");
		if (maxval > 255 && L.mode == AIM_PM_L) {
			L.mode = AIM_PM_I;
			L.ival = 1;
		}
	}
	if (aim_image_check_size("PPM", w, h, max_pixels) < 0)
		return AIM_ERR;
	size_t avail = len - c.pos, samples = (size_t)w * h * L.bands;
	int bytes_per = maxval > 255 ? 2 : 1;
	/* Enough bytes for the image before anything is allocated (plain PGM
	 * and PPM excepted: Pillow repeats a last token cut by the end). */
	if (plain ? bitonal && avail < samples
		  : avail < (bitonal ? (size_t)((w + 7) / 8) * h : samples * bytes_per))
		return aim_error("PPM: not enough image data");
	aim_palette pal;
	aim_palette_ramp(&pal);
	if (aim_image_alloc(out, (int)w, (int)h, channels) < 0)
		return AIM_ERR;
	uint8_t *row = malloc((size_t)w * L.bands * 4);
	if (!row) {
		aim_image_free(out);
		return aim_error("out of memory");
	}
	long long top = L.ival ? 65535 : 255;
	int rowsamples = (int)w * L.bands;
	char tok[12], last_tok[12];
	int n = 0, last_n = 0, last_at_end = 0, half = 0;
	for (long long y = 0; y < h; y++) {
		if (bitonal && !plain) {
			const uint8_t *src = data + c.pos + (size_t)y * ((w + 7) / 8);
			for (long long x = 0; x < w; x++)
				row[x] = (src[x >> 3] >> (7 - (x & 7)) & 1) ? 0 : 255;
		} else if (bitonal) {
			for (long long x = 0; x < w; x++) {
				int ch = -1;
				while (c.pos < len) {
					ch = data[c.pos++];
					if (ch == '#') {
						skip_comment(&c);
						ch = -1;
					} else if (!is_ws(ch)) {
						break;
					} else {
						ch = -1;
					}
				}
				if (ch < 0)
					goto short_data;
				if (ch != '0' && ch != '1')
					goto bad_bit;
				row[x] = ch == '0' ? 255 : 0;
			}
		} else if (plain) {
			for (int i = 0; i < rowsamples; i++) {
				long long v;
				/* Pillow keeps a token cut by the end of its read as a
				 * "half token" and, at the end of the file, adds it again
				 * and again until the image is full. */
				if (!half) {
					int ended = c.pos >= len;
					if (next_token(&c, tok, &n) < 0) {
						if (!ended || !last_at_end)
							goto short_data;
						half = 1;
						n = last_n;
						memcpy(tok, last_tok, sizeof tok);
					} else {
						last_at_end = c.at_end;
						last_n = n;
						memcpy(last_tok, tok, sizeof tok);
					}
				}
				if (n > 10) {
					aim_error("PPM: token too long in the image data");
					goto fail;
				}
				if (py_int(tok, n, &v) < 0) {
					aim_error("PPM: '%.*s' in the image data is not an integer", n, tok);
					goto fail;
				}
				if (v > maxval) {
					aim_error("PPM: value %lld exceeds maxval %lld", v, maxval);
					goto fail;
				}
				v = rescale(v, maxval, top);
				if (L.ival && (v < 0 || v > 0xffffffffLL)) {
					aim_error("PPM: value out of range");
					goto fail;
				}
				store(row, &L, i, v);
			}
		} else {
			const uint8_t *src = data + c.pos + (size_t)y * rowsamples * bytes_per;
			for (int i = 0; i < rowsamples; i++) {
				long long v = bytes_per == 1 ? src[i] : (long long)src[2 * i] << 8 | src[2 * i + 1];
				if (!(maxval == 255 || (maxval == 65535 && L.ival))) {
					v = rescale(v, maxval, top);
					if (v > top)
						v = top;
				}
				store(row, &L, i, v);
			}
		}
		aim_pilmode_convert_row(L.mode, &pal, row, (int)w, channels,
					out->px + (size_t)y * w * channels);
	}
	/* Pillow's plain PBM reader checks every character of the blocks it
	 * read, up to the end of the one holding the last pixel. */
	if (bitonal && plain) {
		size_t start = len - avail, block_end = start + ((c.pos - start + SAFEBLOCK - 1) / SAFEBLOCK) * SAFEBLOCK;
		if (c.pos == start)
			block_end = start;
		while (c.pos < len && c.pos < block_end) {
			int ch = data[c.pos++];
			if (ch == '#')
				skip_comment(&c);
			else if (!is_ws(ch) && ch != '0' && ch != '1')
				goto bad_bit;
		}
	}
	free(row);
	return AIM_OK;
short_data:
	aim_error("PPM: not enough image data");
	goto fail;
bad_bit:
	aim_error("PPM: invalid character in plain PBM data");
fail:
	free(row);
	aim_image_free(out);
	return AIM_ERR;
}
