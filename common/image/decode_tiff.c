/* TIFF through libtiff, as Pillow 9.4 opens it.
 *
 * Pillow reads the first directory (frame 0 of a multi-page file) with its
 * own parser, picks its mode from (byte order, photometric, sample format,
 * fill order, bits per sample, extra samples) in its OPEN_INFO table
 * (mirrored below: a file whose key is not there is refused, as Pillow
 * refuses it), lets libtiff decode compressed data (its TiffDecode.c:
 * TIFFReadEncodedStrip / TIFFReadTile into a buffer, then one of its
 * unpackers per row; YCbCr through TIFFRGBAImage, except contiguous JPEG,
 * which libjpeg converts to RGB) and finally applies the Orientation tag
 * (a transpose). The steps, sizes and checks here are those of that path,
 * in that order, so that libtiff says yes and no to the same files.
 * Uncompressed data Pillow unpacks itself from the strip offsets; libtiff
 * gives the same pixels for it, so this decoder takes libtiff's path for
 * every compression, with the two differences of Pillow's own reader kept:
 * its big-endian 32-bit samples are read correctly where the libtiff path
 * swaps them twice, and uncompressed YCbCr (which Pillow unpacks as four
 * bytes a pixel and so cannot read) is refused.
 *
 * libtiff never prints: every handle gets error and warning handlers of
 * its own (TIFFOpenOptions), the first error becomes the reason given, and
 * warnings are dropped as Pillow drops them. The file is read from memory
 * (TIFFClientOpen with a mapping of the buffer). Memory: the image must fit
 * max_pixels, and so must one tile (libtiff lets a tile be far larger than
 * the image). */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

#include "codec.h"
#include "err.h"

/* ---- the file in memory, as libtiff's client procedures see it ---------- */

typedef struct {
	const uint8_t *data;
	toff_t size, loc;
	int fix_version;  /* header "MM\x2a\0" / "II\0\x2a": read as the valid one */
	char err[200];    /* libtiff's first error message */
} memtiff;

static tsize_t mt_read(thandle_t h, tdata_t buf, tsize_t n)
{
	memtiff *m = h;
	if (m->loc >= m->size || n <= 0)
		return 0;
	toff_t left = m->size - m->loc;
	tsize_t k = (toff_t)n < left ? n : (tsize_t)left;
	memcpy(buf, m->data + m->loc, (size_t)k);
	if (m->fix_version && m->loc < 4) /* the version bytes 2..3 */
		for (toff_t i = m->loc; i < 4 && i < m->loc + (toff_t)k; i++)
			if (i >= 2)
				((uint8_t *)buf)[i - m->loc] = m->data[0] == 'M' ? "\0*"[i - 2] : "*\0"[i - 2];
	m->loc += (toff_t)k;
	return k;
}

static tsize_t mt_write(thandle_t h, tdata_t buf, tsize_t n)
{
	(void)h, (void)buf, (void)n;
	return 0;
}

static toff_t mt_seek(thandle_t h, toff_t off, int whence)
{
	memtiff *m = h;
	if (whence == SEEK_SET)
		m->loc = off;
	else if (whence == SEEK_CUR)
		m->loc += off;
	else
		m->loc = m->size + off;
	return m->loc;
}

static int mt_close(thandle_t h)
{
	(void)h;
	return 0;
}

static toff_t mt_size(thandle_t h)
{
	return ((memtiff *)h)->size;
}

static int mt_map(thandle_t h, tdata_t *base, toff_t *size)
{
	memtiff *m = h;
	if (m->fix_version)
		return 0; /* reads must pass mt_read, which mends the header */
	*base = (tdata_t)(uintptr_t)m->data;
	*size = m->size;
	return 1;
}

static void mt_unmap(thandle_t h, tdata_t base, toff_t size)
{
	(void)h, (void)base, (void)size;
}

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
	(void)tif;
	memtiff *m = user;
	if (!m->err[0]) {
		char msg[160];
		vsnprintf(msg, sizeof msg, fmt, ap);
		for (char *p = msg; *p; p++) /* one line */
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		snprintf(m->err, sizeof m->err, "%s%s%s", module ? module : "", module ? ": " : "", msg);
	}
	return 1; /* handled: nothing reaches libtiff's global handlers */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
	(void)tif, (void)user, (void)module, (void)fmt, (void)ap;
	return 1;
}

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

/* Messages libtiff gives before a handle exists go to the global handlers. */
static void quiet_globals(void)
{
	TIFFSetErrorHandler(NULL);
	TIFFSetWarningHandler(NULL);
	TIFFSetErrorHandlerExt(NULL);
	TIFFSetWarningHandlerExt(NULL);
}

/* ---- Pillow's OPEN_INFO ------------------------------------------------- */

typedef struct {
	char order;  /* 'I', 'M', or '*' for both */
	uint16_t photo, format, fill, spp, bits, nextra, extra[3];
	const char *mode, *rawmode;
} open_info;

/* Fill order 2 keys are listed for their presence only: libtiff reverses
 * the bits and the fill order 1 entry is used. Their raw mode is "+" where
 * Pillow's own reader of uncompressed data has an unpacker for it, "-"
 * where it has none and refuses the file. */
static const open_info OPEN_INFO[] = {
	{'*', 0, 1, 1, 1, 1, 0, {0}, "1", "1;I"},
	{'*', 0, 1, 2, 1, 1, 0, {0}, "1", "+"},
	{'*', 1, 1, 1, 1, 1, 0, {0}, "1", "1"},
	{'*', 1, 1, 2, 1, 1, 0, {0}, "1", "+"},
	{'*', 0, 1, 1, 1, 2, 0, {0}, "L", "L;2I"},
	{'*', 0, 1, 2, 1, 2, 0, {0}, "L", "+"},
	{'*', 1, 1, 1, 1, 2, 0, {0}, "L", "L;2"},
	{'*', 1, 1, 2, 1, 2, 0, {0}, "L", "+"},
	{'*', 0, 1, 1, 1, 4, 0, {0}, "L", "L;4I"},
	{'*', 0, 1, 2, 1, 4, 0, {0}, "L", "+"},
	{'*', 1, 1, 1, 1, 4, 0, {0}, "L", "L;4"},
	{'*', 1, 1, 2, 1, 4, 0, {0}, "L", "+"},
	{'*', 0, 1, 1, 1, 8, 0, {0}, "L", "L;I"},
	{'*', 0, 1, 2, 1, 8, 0, {0}, "L", "-"},
	{'*', 1, 1, 1, 1, 8, 0, {0}, "L", "L"},
	{'*', 1, 1, 2, 1, 8, 0, {0}, "L", "+"},
	{'I', 1, 1, 1, 1, 12, 0, {0}, "I;16", "I;12"},
	{'I', 0, 1, 1, 1, 16, 0, {0}, "I;16", "I;16N"},
	{'I', 1, 1, 1, 1, 16, 0, {0}, "I;16", "I;16N"},
	{'M', 1, 1, 1, 1, 16, 0, {0}, "I;16B", "I;16N"},
	{'I', 1, 1, 2, 1, 16, 0, {0}, "I;16", "+"},
	{'I', 1, 2, 1, 1, 16, 0, {0}, "I", "I;16S"},
	{'M', 1, 2, 1, 1, 16, 0, {0}, "I", "I;16NS"},
	{'I', 0, 3, 1, 1, 32, 0, {0}, "F", "F;32F"},
	{'M', 0, 3, 1, 1, 32, 0, {0}, "F", "F;32BF"},
	{'I', 1, 1, 1, 1, 32, 0, {0}, "I", "I;32N"},
	{'I', 1, 2, 1, 1, 32, 0, {0}, "I", "I;32S"},
	{'M', 1, 2, 1, 1, 32, 0, {0}, "I", "I;32BS"},
	{'I', 1, 3, 1, 1, 32, 0, {0}, "F", "F;32F"},
	{'M', 1, 3, 1, 1, 32, 0, {0}, "F", "F;32BF"},
	{'*', 1, 1, 1, 2, 8, 1, {2}, "LA", "LA"},
	{'*', 2, 1, 1, 3, 8, 0, {0}, "RGB", "RGB"},
	{'*', 2, 1, 2, 3, 8, 0, {0}, "RGB", "+"},
	{'*', 2, 1, 1, 4, 8, 0, {0}, "RGBA", "RGBA"},
	{'*', 2, 1, 1, 4, 8, 1, {0}, "RGBX", "RGBX"},
	{'*', 2, 1, 1, 5, 8, 2, {0, 0}, "RGBX", "RGBXX"},
	{'*', 2, 1, 1, 6, 8, 3, {0, 0, 0}, "RGBX", "RGBXXX"},
	{'*', 2, 1, 1, 4, 8, 1, {1}, "RGBA", "RGBa"},
	{'*', 2, 1, 1, 5, 8, 2, {1, 0}, "RGBA", "RGBaX"},
	{'*', 2, 1, 1, 6, 8, 3, {1, 0, 0}, "RGBA", "RGBaXX"},
	{'*', 2, 1, 1, 4, 8, 1, {2}, "RGBA", "RGBA"},
	{'*', 2, 1, 1, 5, 8, 2, {2, 0}, "RGBA", "RGBAX"},
	{'*', 2, 1, 1, 6, 8, 3, {2, 0, 0}, "RGBA", "RGBAXX"},
	{'*', 2, 1, 1, 4, 8, 1, {999}, "RGBA", "RGBA"},
	{'*', 2, 1, 1, 3, 16, 0, {0}, "RGB", "RGB;16N"},
	{'*', 2, 1, 1, 4, 16, 0, {0}, "RGBA", "RGBA;16N"},
	{'*', 2, 1, 1, 4, 16, 1, {0}, "RGBX", "RGBX;16N"},
	{'*', 2, 1, 1, 4, 16, 1, {1}, "RGBA", "RGBa;16N"},
	{'*', 2, 1, 1, 4, 16, 1, {2}, "RGBA", "RGBA;16N"},
	{'*', 3, 1, 1, 1, 1, 0, {0}, "P", "P;1"},
	{'*', 3, 1, 2, 1, 1, 0, {0}, "P", "-"},
	{'*', 3, 1, 1, 1, 2, 0, {0}, "P", "P;2"},
	{'*', 3, 1, 2, 1, 2, 0, {0}, "P", "-"},
	{'*', 3, 1, 1, 1, 4, 0, {0}, "P", "P;4"},
	{'*', 3, 1, 2, 1, 4, 0, {0}, "P", "-"},
	{'*', 3, 1, 1, 1, 8, 0, {0}, "P", "P"},
	{'*', 3, 1, 1, 2, 8, 1, {2}, "PA", "PA"},
	{'*', 3, 1, 2, 1, 8, 0, {0}, "P", "-"},
	{'*', 5, 1, 1, 4, 8, 0, {0}, "CMYK", "CMYK"},
	{'*', 5, 1, 1, 5, 8, 1, {0}, "CMYK", "CMYKX"},
	{'*', 5, 1, 1, 6, 8, 2, {0, 0}, "CMYK", "CMYKXX"},
	{'I', 5, 1, 1, 4, 16, 0, {0}, "CMYK", "CMYK;16N"},
	{'*', 6, 1, 1, 3, 8, 0, {0}, "RGB", "RGBX"},
	{'*', 8, 1, 1, 3, 8, 0, {0}, "LAB", "LAB"},
};

static const open_info *find_open_info(char order, uint16_t photo, uint16_t format, uint16_t fill,
				       uint16_t spp, uint16_t bits, uint16_t nextra, const uint16_t *extra)
{
	for (size_t i = 0; i < sizeof OPEN_INFO / sizeof *OPEN_INFO; i++) {
		const open_info *e = &OPEN_INFO[i];
		if ((e->order != '*' && e->order != order) || e->photo != photo || e->format != format ||
		    e->fill != fill || e->spp != spp || e->bits != bits || e->nextra != nextra)
			continue;
		int same = 1;
		for (int k = 0; k < nextra; k++)
			same &= e->extra[k] == extra[k];
		if (same)
			return e;
	}
	return NULL;
}

/* ---- Pillow's unpackers for those raw modes ----------------------------- */

typedef enum {
	R_BITS1, R_BITS1I, R_L2, R_L2I, R_L4, R_L4I, R_L, R_LI, R_I12, R_I16, R_I16S_LE, R_I16S,
	R_I32, R_I32_LE, R_I32_BE, R_F32, R_F32_LE, R_F32_BE, R_P1, R_P2, R_P4, R_SAMPLES,
} raw_kind;

typedef struct {
	raw_kind kind;
	int bits;       /* of one pixel in the buffer (Pillow's unpacker bits) */
	int nin, nout;  /* R_SAMPLES: keep the first nout of nin samples */
	int wide;       /* R_SAMPLES: 16-bit samples (the high byte is kept) */
	int premul;     /* R_SAMPLES: RGBa, premultiplied alpha divided out */
	aim_pilmode pm; /* the mode the pixels are then in */
} raw_fmt;

static int raw_format(const char *mode, const char *raw, int compressed, raw_fmt *f)
{
	static const struct {
		const char *raw;
		raw_kind kind;
		int bits;
		aim_pilmode pm;
	} simple[] = {
		{"1", R_BITS1, 1, AIM_PM_1},     {"1;I", R_BITS1I, 1, AIM_PM_1},   {"L;2", R_L2, 2, AIM_PM_L},
		{"L;2I", R_L2I, 2, AIM_PM_L},    {"L;4", R_L4, 4, AIM_PM_L},       {"L;4I", R_L4I, 4, AIM_PM_L},
		{"L", R_L, 8, AIM_PM_L},         {"L;I", R_LI, 8, AIM_PM_L},       {"I;12", R_I12, 12, AIM_PM_I16},
		{"I;16N", R_I16, 16, AIM_PM_I16}, {"I;16S", R_I16S_LE, 16, AIM_PM_I}, {"I;16NS", R_I16S, 16, AIM_PM_I},
		{"I;32N", R_I32, 32, AIM_PM_I},  {"I;32S", R_I32_LE, 32, AIM_PM_I}, {"I;32BS", R_I32_BE, 32, AIM_PM_I},
		{"F;32F", R_F32_LE, 32, AIM_PM_F}, {"F;32BF", R_F32_BE, 32, AIM_PM_F}, {"P;1", R_P1, 1, AIM_PM_P},
		{"P;2", R_P2, 2, AIM_PM_P},      {"P;4", R_P4, 4, AIM_PM_P},       {"P", R_L, 8, AIM_PM_P},
	};
	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < sizeof simple / sizeof *simple; i++)
		if (!strcmp(raw, simple[i].raw)) {
			f->kind = simple[i].kind;
			f->bits = simple[i].bits;
			f->pm = simple[i].pm;
			/* Pillow's own reader of uncompressed data reads every sample in
			 * the file's order; the libtiff path reads libtiff's native
			 * buffer with the file's order named by the raw mode */
			if (!compressed) {
				if (f->kind == R_I16S_LE)
					f->kind = R_I16S;
				else if (f->kind == R_I32_LE || f->kind == R_I32_BE)
					f->kind = R_I32;
				else if (f->kind == R_F32_LE || f->kind == R_F32_BE)
					f->kind = R_F32;
			}
			return 0;
		}
	/* multi-sample: letters, X for a skipped sample, a for premultiplied
	 * alpha, ;16N for 16-bit samples */
	f->kind = R_SAMPLES;
	f->wide = strstr(raw, ";16N") != NULL;
	size_t n = strcspn(raw, ";");
	f->nin = (int)n;
	f->premul = strchr(raw, 'a') != NULL && strncmp(raw, "LA", 2) != 0;
	if (!strcmp(mode, "LA") || !strcmp(mode, "PA")) {
		f->nout = 2;
		f->pm = mode[0] == 'L' ? AIM_PM_LA : AIM_PM_PA;
	} else if (!strcmp(mode, "RGB")) {
		f->nout = 3;
		f->pm = AIM_PM_RGB;
	} else if (!strcmp(mode, "RGBA") || !strcmp(mode, "RGBX")) {
		f->nout = 4;
		f->pm = AIM_PM_RGBA;
	} else if (!strcmp(mode, "CMYK")) {
		f->nout = 4;
		f->pm = AIM_PM_CMYK;
	} else {
		return -1; /* LAB: Pillow converts it with LittleCMS */
	}
	if (f->nin < f->nout)
		return -1;
	f->bits = f->nin * (f->wide ? 16 : 8);
	return 0;
}

static inline uint8_t clip8(int v)
{
	return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
}

static void unpack(const raw_fmt *f, const uint8_t *in, int n, uint8_t *out)
{
	int x;
	switch (f->kind) {
	case R_BITS1: case R_BITS1I: case R_P1:
		for (x = 0; x < n; x++) {
			int bit = (in[x >> 3] >> (7 - (x & 7))) & 1;
			out[x] = f->kind == R_P1 ? (uint8_t)bit : (uint8_t)((bit ^ (f->kind == R_BITS1I)) ? 255 : 0);
		}
		break;
	case R_L2: case R_L2I: case R_P2:
		for (x = 0; x < n; x++) {
			int v = (in[x >> 2] >> (6 - 2 * (x & 3))) & 3;
			out[x] = f->kind == R_P2 ? (uint8_t)v : f->kind == R_L2 ? (uint8_t)(v * 0x55) : (uint8_t)(255 - v * 0x55);
		}
		break;
	case R_L4: case R_L4I: case R_P4:
		for (x = 0; x < n; x++) {
			int v = (in[x >> 1] >> (4 - 4 * (x & 1))) & 15;
			out[x] = f->kind == R_P4 ? (uint8_t)v : f->kind == R_L4 ? (uint8_t)(v * 0x11) : (uint8_t)(255 - v * 0x11);
		}
		break;
	case R_L:
		memcpy(out, in, (size_t)n);
		break;
	case R_LI:
		for (x = 0; x < n; x++)
			out[x] = (uint8_t)~in[x];
		break;
	case R_I12: /* two 12-bit samples in three bytes, most significant first */
		for (x = 0; x < n; x++) {
			const uint8_t *p = in + (x / 2) * 3;
			uint16_t v = x & 1 ? (uint16_t)(((p[1] & 15) << 8) | p[2]) : (uint16_t)((p[0] << 4) | (p[1] >> 4));
			memcpy(out + 2 * x, &v, 2);
		}
		break;
	case R_I16:
		memcpy(out, in, (size_t)n * 2);
		break;
	case R_I16S: case R_I16S_LE:
		for (x = 0; x < n; x++) {
			int16_t s;
			if (f->kind == R_I16S)
				memcpy(&s, in + 2 * x, 2);
			else
				s = (int16_t)(in[2 * x] | in[2 * x + 1] << 8);
			int32_t v = s;
			memcpy(out + 4 * x, &v, 4);
		}
		break;
	case R_I32: case R_F32:
		memcpy(out, in, (size_t)n * 4);
		break;
	case R_I32_LE: case R_I32_BE: case R_F32_LE: case R_F32_BE:
		for (x = 0; x < n; x++) {
			const uint8_t *p = in + 4 * x;
			uint32_t v = f->kind == R_I32_LE || f->kind == R_F32_LE
					     ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
					     : (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
			memcpy(out + 4 * x, &v, 4);
		}
		break;
	case R_SAMPLES: {
		int step = f->wide ? 2 : 1;
		for (x = 0; x < n; x++) {
			const uint8_t *p = in + (size_t)x * f->nin * step;
			uint8_t *o = out + (size_t)x * f->nout;
			for (int k = 0; k < f->nout; k++) {
				uint16_t v;
				if (f->wide)
					memcpy(&v, p + 2 * k, 2);
				o[k] = f->wide ? (uint8_t)(v >> 8) : p[k];
			}
			if (f->premul) { /* Pillow's unpackRGBa */
				int a = o[3];
				if (a == 0)
					o[0] = o[1] = o[2] = 0;
				else if (a != 255)
					for (int k = 0; k < 3; k++)
						o[k] = clip8(o[k] * 255 / a);
			}
		}
		break;
	}
	}
}

/* ---- the first directory's tags, where Pillow's defaults differ -------- */

/* An unsigned k-byte number at o, in the file's byte order. */
static uint64_t get_uint(const uint8_t *d, size_t o, int k, int big_endian)
{
	uint64_t v = 0;
	for (int i = 0; i < k; i++)
		v |= (uint64_t)d[o + (big_endian ? k - 1 - i : i)] << (8 * i);
	return v;
}

/* A SHORT tag of the first directory as Pillow's own parser sees it: 1 and
 * its first value in *v, 0 if the directory has no such tag, -1 if the
 * directory or the value cannot be read (then libtiff's value is taken).
 * libtiff mends some tags (a missing Photometric is guessed, a palette
 * without a colour map becomes grey) where Pillow keeps what the file says
 * or takes a fixed default. */
static int first_ifd_short(const uint8_t *d, size_t n, uint16_t tag, uint16_t *v)
{
	if (n < 16)
		return -1;
	int be = d[0] == 'M', big = (be ? d[3] : d[2]) == 43;
	size_t esz = big ? 20 : 12, csz = big ? 8 : 2;
	uint64_t off = big ? get_uint(d, 8, 8, be) : get_uint(d, 4, 4, be);
	if (off > n || n - off < csz)
		return -1;
	uint64_t count = get_uint(d, (size_t)off, (int)csz, be);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t e = off + csz + i * esz;
		if (e > n || n - e < esz)
			return -1;
		if (get_uint(d, (size_t)e, 2, be) != tag)
			continue;
		if (get_uint(d, (size_t)e + 2, 2, be) != TIFF_SHORT || get_uint(d, (size_t)e + 4, big ? 8 : 4, be) < 1)
			return -1;
		*v = (uint16_t)get_uint(d, (size_t)e + (big ? 12 : 8), 2, be);
		return 1;
	}
	return 0;
}

/* ---- decoding: Pillow's TiffDecode.c steps ------------------------------ */

typedef struct {
	TIFF *tif;
	memtiff *m;
	int w, h, planes;
	raw_fmt fmt;
	int bpp;      /* bytes a pixel in the Pillow mode fmt.pm */
	int row_bits; /* Pillow's bits of a pixel in one plane's buffer: the
		       * libtiff path's bits / planes, or for uncompressed
		       * separate planes (Pillow's own reader) the sample's */
	uint8_t *px;  /* h rows of w pixels in that mode */
	int64_t max_pixels;
} tiff_job;

static int broken(tiff_job *j, const char *what)
{
	if (j->m->err[0])
		return aim_error("TIFF: %s", j->m->err);
	return aim_error("TIFF: %s", what);
}

/* Plane p's samples (8 or 16 bits) into band p of n pixels, or the whole
 * pixels when the data is contiguous. */
static void put_pixels(tiff_job *j, int plane, const uint8_t *in, int n, uint8_t *out)
{
	if (j->planes == 1) {
		unpack(&j->fmt, in, n, out);
		return;
	}
	int wide = j->fmt.wide;
	for (int x = 0; x < n; x++) {
		uint8_t v;
		if (wide) {
			uint16_t s;
			memcpy(&s, in + 2 * x, 2);
			v = (uint8_t)(s >> 8);
		} else {
			v = in[x];
		}
		out[(size_t)x * j->bpp + plane] = v;
	}
}

/* The bytes Pillow unpacks for n pixels of a row. */
static int64_t row_bytes(const tiff_job *j, int n)
{
	if (j->row_bits)
		return ((int64_t)n * j->row_bits + 7) / 8;
	return ((int64_t)n * j->fmt.bits / j->planes + 7) / 8;
}

static int decode_strips(tiff_job *j)
{
	uint32_t rps;
	if (TIFFGetField(j->tif, TIFFTAG_ROWSPERSTRIP, &rps) != 1 || rps == (uint32_t)-1)
		rps = (uint32_t)j->h;
	if (rps > INT_MAX)
		return aim_error("TIFF: %u rows a strip is too many", rps);
	tmsize_t strip = TIFFStripSize(j->tif);
	if (strip > INT_MAX - 1)
		return aim_error("TIFF: strips of %lld bytes are too large", (long long)strip);
	int64_t unpack_row = row_bytes(j, j->w);
	if (!j->row_bits && strip > unpack_row * rps)
		return broken(j, "strip size larger than its rows");
	tmsize_t row = TIFFScanlineSize(j->tif);
	if (row == 0 || unpack_row > row)
		return broken(j, "scanline shorter than a row of pixels");
	uint8_t *buf = calloc((size_t)(strip ? strip : 1), 1);
	if (!buf)
		return aim_error("TIFF: out of memory for a strip of %lld bytes", (long long)strip);
	for (int y = 0; y < j->h; y += (int)rps) {
		int rows = (int)rps < j->h - y ? (int)rps : j->h - y;
		/* Pillow reads past its buffer where a strip holds fewer rows than
		 * it unpacks; that is refused here */
		if ((int64_t)(rows - 1) * row + unpack_row > strip) {
			free(buf);
			return broken(j, "strip shorter than its rows");
		}
		for (int p = 0; p < j->planes; p++) {
			if (TIFFReadEncodedStrip(j->tif, TIFFComputeStrip(j->tif, (uint32_t)y, (uint16_t)p), buf,
						 strip) == -1) {
				free(buf);
				return broken(j, "cannot read a strip");
			}
			for (int r = 0; r < rows; r++)
				put_pixels(j, p, buf + (size_t)r * row, j->w,
					   j->px + ((size_t)(y + r) * j->w) * j->bpp);
		}
	}
	free(buf);
	return AIM_OK;
}

static int decode_tiles(tiff_job *j)
{
	tmsize_t tile = TIFFTileSize(j->tif);
	if (tile == 0)
		return broken(j, "bad tile size");
	tmsize_t row = TIFFTileRowSize(j->tif);
	if (row == 0 || row > tile)
		return broken(j, "bad tile row size");
	if (tile > INT_MAX - 1)
		return aim_error("TIFF: tiles of %lld bytes are too large", (long long)tile);
	uint32_t tw = 0, tl = 0;
	TIFFGetField(j->tif, TIFFTAG_TILEWIDTH, &tw);
	TIFFGetField(j->tif, TIFFTAG_TILELENGTH, &tl);
	if (tw > INT_MAX || tl > INT_MAX)
		return aim_error("TIFF: tiles of %ux%u are too large", tw, tl);
	if (!j->row_bits && (uint64_t)tile > (((uint64_t)tl * j->fmt.bits / j->planes + 7) / 8) * tw)
		return broken(j, "tile size larger than its pixels");
	if (tw == 0 || tl == 0)
		return broken(j, "bad tile size");
	if (j->max_pixels > 0 && (int64_t)tw * tl > j->max_pixels)
		return aim_error("TIFF: tiles of %ux%u = %lld pixels exceed the limit of %lld (--max-pixels)",
				 tw, tl, (long long)tw * tl, (long long)j->max_pixels);
	uint8_t *buf = calloc((size_t)tile, 1);
	if (!buf)
		return aim_error("TIFF: out of memory for a tile of %lld bytes", (long long)tile);
	for (int y = 0; y < j->h; y += (int)tl)
		for (int p = 0; p < j->planes; p++)
			for (int x = 0; x < j->w; x += (int)tw) {
				if (TIFFReadTile(j->tif, buf, (uint32_t)x, (uint32_t)y, 0, (uint16_t)p) == -1) {
					free(buf);
					return broken(j, "cannot read a tile");
				}
				int cw = (int)tw < j->w - x ? (int)tw : j->w - x;
				int cl = (int)tl < j->h - y ? (int)tl : j->h - y;
				if ((int64_t)(cl - 1) * row + row_bytes(j, cw) > tile) {
					free(buf);
					return broken(j, "tile shorter than its rows");
				}
				for (int r = 0; r < cl; r++)
					put_pixels(j, p, buf + (size_t)r * row, cw,
						   j->px + ((size_t)(y + r) * j->w + x) * j->bpp);
			}
	free(buf);
	return AIM_OK;
}

/* YCbCr other than contiguous JPEG: libtiff's RGBA image interface, blocks
 * of a strip's or a tile's rows, as Pillow's _decodeAsRGBA. */
static int decode_rgba(tiff_job *j)
{
	uint32_t rpb = 0;
	int ret = TIFFIsTiled(j->tif) ? TIFFGetFieldDefaulted(j->tif, TIFFTAG_TILELENGTH, &rpb)
				      : TIFFGetFieldDefaulted(j->tif, TIFFTAG_ROWSPERSTRIP, &rpb);
	if (ret != 1 || rpb == (uint32_t)-1)
		rpb = (uint32_t)j->h;
	char emsg[1024] = "";
	TIFFRGBAImage img;
	if (!TIFFRGBAImageOK(j->tif, emsg) || !TIFFRGBAImageBegin(&img, j->tif, 0, emsg)) {
		if (!j->m->err[0])
			snprintf(j->m->err, sizeof j->m->err, "%.150s", emsg[0] ? emsg : "cannot read as RGBA");
		return broken(j, "cannot read as RGBA");
	}
	img.req_orientation = ORIENTATION_TOPLEFT;
	img.col_offset = 0;
	int rc = AIM_OK;
	uint32_t *buf = NULL;
	if (INT_MAX / 4 < img.width || rpb == 0 || INT_MAX / (img.width * 4) < rpb) {
		rc = aim_error("TIFF: RGBA blocks of %ux%u are too large", img.width, rpb);
		goto done;
	}
	/* no block holds more rows than the image */
	uint32_t alloc_rows = rpb < img.height ? rpb : img.height;
	buf = calloc((size_t)img.width * (alloc_rows ? alloc_rows : 1), 4);
	if (!buf) {
		rc = aim_error("TIFF: out of memory");
		goto done;
	}
	for (int y = 0; y < j->h; y += (int)rpb) {
		img.row_offset = y;
		uint32_t rows = rpb < img.height - (uint32_t)y ? rpb : img.height - (uint32_t)y;
		if (!TIFFRGBAImageGet(&img, buf, img.width, rows)) {
			rc = broken(j, "cannot read as RGBA");
			goto done;
		}
		int n = (int)rpb < j->h - y ? (int)rpb : j->h - y;
		if ((uint32_t)n > rows || img.width < (uint32_t)j->w) {
			rc = broken(j, "RGBA block smaller than the image");
			goto done;
		}
		for (int r = 0; r < n; r++)
			for (int x = 0; x < j->w; x++) {
				uint32_t v = buf[(size_t)r * img.width + x];
				uint8_t *o = j->px + ((size_t)(y + r) * j->w + x) * 4;
				o[0] = (uint8_t)TIFFGetR(v);
				o[1] = (uint8_t)TIFFGetG(v);
				o[2] = (uint8_t)TIFFGetB(v);
				o[3] = (uint8_t)TIFFGetA(v);
			}
	}
done:
	free(buf);
	TIFFRGBAImageEnd(&img);
	return rc;
}

/* Pillow's Image.transpose for the Orientation tag, on the 8-bit result. */
static int orient(aim_image *im, int orientation)
{
	if (orientation < 2 || orientation > 8)
		return AIM_OK;
	int w = im->w, h = im->h, c = im->c, swap = orientation >= 5;
	aim_image t;
	if (aim_image_alloc(&t, swap ? h : w, swap ? w : h, c) < 0)
		return AIM_ERR;
	for (int y = 0; y < t.h; y++)
		for (int x = 0; x < t.w; x++) {
			int sx, sy;
			switch (orientation) {
			case 2: sx = w - 1 - x, sy = y; break;              /* FLIP_LEFT_RIGHT */
			case 3: sx = w - 1 - x, sy = h - 1 - y; break;      /* ROTATE_180 */
			case 4: sx = x, sy = h - 1 - y; break;              /* FLIP_TOP_BOTTOM */
			case 5: sx = y, sy = x; break;                      /* TRANSPOSE */
			case 6: sx = y, sy = h - 1 - x; break;              /* ROTATE_270 */
			case 7: sx = w - 1 - y, sy = h - 1 - x; break;      /* TRANSVERSE */
			default: sx = w - 1 - y, sy = x; break;             /* ROTATE_90 */
			}
			memcpy(t.px + ((size_t)y * t.w + x) * c, im->px + ((size_t)sy * w + sx) * c, (size_t)c);
		}
	aim_image_free(im);
	*im = t;
	return AIM_OK;
}

/* Pillow's own reader unpacks uncompressed plane i with the unpacker named
 * by letter i of the raw mode; it has them for the bands of RGB, RGBA,
 * RGBX and CMYK only (no "a", no "X" but in RGBX, none for LA and PA). */
static int raw_planes_unpacked(const char *mode, const char *raw, int spp)
{
	const char *bands = !strcmp(mode, "RGB") ? "RGB" : !strcmp(mode, "RGBA") ? "RGBA"
			  : !strcmp(mode, "RGBX") ? "RGBX" : !strcmp(mode, "CMYK") ? "CMYK" : NULL;
	if (!bands || (int)strcspn(raw, ";") < spp)
		return 0;
	for (int i = 0; i < spp; i++)
		if (!strchr(bands, raw[i]))
			return 0;
	return 1;
}

static int known_compression(uint16_t c)
{
	static const uint16_t pillow[] = {1, 2, 3, 4, 5, 6, 7, 8, 32771, 32773, 32809, 32946, 34676, 34677, 34925,
					  50000, 50001};
	for (size_t i = 0; i < sizeof pillow / sizeof *pillow; i++)
		if (c == pillow[i])
			return 1;
	return 0;
}

static int decode_open(tiff_job *j, const uint8_t *data, size_t len, int channels, aim_image *out)
{
	TIFF *tif = j->tif;
	uint32_t w = 0, h = 0;
	TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
	TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
	uint16_t compression = 1, photo = 0, planar = 1, fill = 1, format = 1, bits = 1, spp = 1, nextra = 0;
	uint16_t *extra = NULL;
	TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
	if (!known_compression(compression))
		return aim_error("TIFF: unknown compression %u", compression);
	int has = first_ifd_short(data, len, TIFFTAG_PHOTOMETRIC, &photo); /* Pillow's default: 0 */
	if (has < 0)
		TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo);
	if (compression == COMPRESSION_OJPEG)
		photo = PHOTOMETRIC_YCBCR; /* as Pillow assumes */
	TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
	TIFFGetFieldDefaulted(tif, TIFFTAG_FILLORDER, &fill);
	TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
	TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
	TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &nextra, &extra);
	uint16_t file_spp;
	if (first_ifd_short(data, len, TIFFTAG_SAMPLESPERPIXEL, &file_spp) == 0)
		spp = compression == COMPRESSION_OJPEG && (photo == 2 || photo == 6) ? 3 : 1;
	else
		TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
	if (spp > 6)
		return aim_error("TIFF: %u samples a pixel is more than Pillow reads", spp);
	if (nextra > 3)
		return aim_error("TIFF: unknown pixel mode (%u extra samples)", nextra);
	char order = data[0] == 'M' ? 'M' : 'I';
	const open_info *oi = find_open_info(order, photo, format, fill, spp, bits, nextra, extra);
	if (oi && fill == 2 && compression == COMPRESSION_NONE && oi->rawmode[0] == '-')
		return aim_error("TIFF: unknown raw mode for bit-reversed (fill order 2) %s", oi->mode);
	if (oi && fill == 2) /* libtiff reverses the bits: the fill order 1 mode */
		oi = find_open_info(order, photo, format, 1, spp, bits, nextra, extra);
	if (!oi)
		return aim_error("TIFF: unknown pixel mode (photometric %u, %u x %u bits, sample format %u, "
				 "%u extra, fill order %u)", photo, spp, bits, format, nextra, fill);
	if (aim_image_check_size("TIFF", w, h, j->max_pixels) < 0)
		return AIM_ERR;
	int compressed = compression != COMPRESSION_NONE;
	if (raw_format(oi->mode, oi->rawmode, compressed, &j->fmt) < 0)
		return aim_error("TIFF: mode %s is not converted to RGB or L (Pillow uses LittleCMS)", oi->mode);
	if (!strcmp(oi->mode, "P") || !strcmp(oi->mode, "PA")) {
		uint16_t *r, *g, *b;
		if (!TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b))
			return aim_error("TIFF: palette image without a colour map");
	}
	j->w = (int)w;
	j->h = (int)h;
	j->bpp = aim_pilmode_bpp(j->fmt.pm);

	uint16_t tphoto = 0;
	TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &tphoto);
	int as_rgba = tphoto == PHOTOMETRIC_YCBCR;
	if (as_rgba && compression == COMPRESSION_JPEG && planar == PLANARCONFIG_CONTIG) {
		/* libjpeg converts to RGB: Pillow's raw mode is then RGB */
		TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
		as_rgba = 0;
		raw_format("RGB", "RGB", compressed, &j->fmt);
		j->bpp = aim_pilmode_bpp(j->fmt.pm);
	}
	if (as_rgba && !compressed)
		return aim_error("TIFF: uncompressed YCbCr is not read (Pillow unpacks it as 4 bytes a pixel)");
	if (as_rgba) {
		j->fmt.pm = AIM_PM_RGBA;
		j->bpp = 4;
	}
	j->px = calloc((size_t)j->w * j->h, (size_t)j->bpp);
	if (!j->px)
		return aim_error("TIFF: out of memory for a %dx%d image", j->w, j->h);
	int rc;
	if (as_rgba) {
		rc = decode_rgba(j);
	} else {
		j->planes = 1;
		int bands = j->fmt.kind == R_SAMPLES ? j->fmt.nout : 1;
		if (planar == PLANARCONFIG_SEPARATE && bands > 1) {
			if (bits != 8 && bits != 16)
				return broken(j, "separate planes of other than 8 or 16 bits");
			if (!compressed && bits == 16)
				return aim_error("TIFF: uncompressed 16-bit separate planes are not read "
						 "(Pillow misreads them)");
			if (!compressed && !raw_planes_unpacked(oi->mode, oi->rawmode, spp))
				return aim_error("TIFF: unknown raw mode for uncompressed separate planes of %s",
						 oi->mode);
			j->planes = bands;
			if (!compressed)
				j->row_bits = bits;
		}
		rc = TIFFIsTiled(tif) ? decode_tiles(j) : decode_strips(j);
		/* separate planes of associated alpha: divided out afterwards */
		if (rc == AIM_OK && j->planes > 3 && j->fmt.premul)
			for (size_t i = 0; i < (size_t)j->w * j->h; i++) {
				uint8_t *o = j->px + i * 4;
				int a = o[3];
				if (a == 0)
					o[0] = o[1] = o[2] = 0;
				else if (a != 255)
					for (int k = 0; k < 3; k++)
						o[k] = clip8(o[k] * 255 / a);
			}
	}
	if (rc < 0)
		return rc;

	aim_palette pal;
	aim_palette_ramp(&pal);
	if (j->fmt.pm == AIM_PM_P || j->fmt.pm == AIM_PM_PA) {
		uint16_t *r, *g, *b;
		TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b);
		int n = bits < 8 ? 1 << bits : 256;
		for (int i = 0; i < n; i++) {
			pal.rgb[i][0] = (uint8_t)(r[i] >> 8);
			pal.rgb[i][1] = (uint8_t)(g[i] >> 8);
			pal.rgb[i][2] = (uint8_t)(b[i] >> 8);
		}
	}
	if (aim_image_alloc(out, j->w, j->h, channels) < 0)
		return AIM_ERR;
	for (int y = 0; y < j->h; y++)
		aim_pilmode_convert_row(j->fmt.pm, &pal, j->px + (size_t)y * j->w * j->bpp, j->w, channels,
					out->px + (size_t)y * j->w * channels);
	uint16_t orientation = 0;
	if (TIFFGetField(tif, TIFFTAG_ORIENTATION, &orientation) == 1 && orient(out, orientation) < 0) {
		aim_image_free(out);
		return AIM_ERR;
	}
	return AIM_OK;
}

int aim_decode_tiff(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out)
{
	pthread_once(&quiet_once, quiet_globals);
	/* Pillow 9.4 takes a file for BigTIFF by its third byte alone, so it
	 * reads a big-endian BigTIFF header as a classic one (its first
	 * directory then lies at 0x00080000) and fails */
	if (len >= 4 && !memcmp(data, "MM\0+", 4))
		return aim_error("TIFF: big-endian BigTIFF is not read (Pillow 9.4 misreads its header)");
	memtiff m = {.data = data, .size = len};
	m.fix_version = len >= 4 && (!memcmp(data, "MM*\0", 4) || !memcmp(data, "II\0*", 4));
	TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
	if (!opts)
		return aim_error("TIFF: out of memory");
	TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, &m);
	TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, &m);
	/* "r": read; "C": strip chopping, as Pillow opens it */
	TIFF *tif = TIFFClientOpenExt("TIFF", "rC", &m, mt_read, mt_write, mt_seek, mt_close, mt_size, mt_map,
				      mt_unmap, opts);
	TIFFOpenOptionsFree(opts);
	if (!tif)
		return aim_error("TIFF: %s", m.err[0] ? m.err : "cannot read the first directory");
	tiff_job j = {.tif = tif, .m = &m, .max_pixels = max_pixels};
	int rc = decode_open(&j, data, len, channels, out);
	free(j.px);
	TIFFClose(tif);
	if (rc < 0)
		aim_image_free(out);
	return rc;
}
