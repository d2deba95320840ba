/* TIFF through libtiff, as Pillow 9.4 opens it.
 *
 * Pillow reads the first directory (frame 0 of a multi-page file) with its
 * own parser, picks its mode from (byte order, photometric, sample format,
 * fill order, bits per sample, extra samples) in its OPEN_INFO table
 * (mirrored in tiff_modes.c: a file whose key is not there is refused, as Pillow
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
#include "tiff_modes.h"

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
		aim_tiff_unpack(&j->fmt, in, n, out);
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
	const open_info *oi = aim_tiff_open_info(order, photo, format, fill, spp, bits, nextra, extra);
	if (oi && fill == 2 && compression == COMPRESSION_NONE && oi->rawmode[0] == '-')
		return aim_error("TIFF: unknown raw mode for bit-reversed (fill order 2) %s", oi->mode);
	if (oi && fill == 2) /* libtiff reverses the bits: the fill order 1 mode */
		oi = aim_tiff_open_info(order, photo, format, 1, spp, bits, nextra, extra);
	if (!oi)
		return aim_error("TIFF: unknown pixel mode (photometric %u, %u x %u bits, sample format %u, "
				 "%u extra, fill order %u)", photo, spp, bits, format, nextra, fill);
	if (aim_image_check_size("TIFF", w, h, j->max_pixels) < 0)
		return AIM_ERR;
	int compressed = compression != COMPRESSION_NONE;
	if (aim_tiff_raw_format(oi->mode, oi->rawmode, compressed, &j->fmt) < 0)
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
		aim_tiff_raw_format("RGB", "RGB", compressed, &j->fmt);
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
			for (size_t i = 0; i < (size_t)j->w * j->h; i++)
				unpremultiply_rgba(j->px + i * 4);
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
