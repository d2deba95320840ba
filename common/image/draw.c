/* Small raster drawing and PNG output for the tools' pictures. */
#include "draw.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fileio.h"

/* Classic 5x7 font, ASCII 0x20..0x7E; 5 columns per glyph, bit 0 = top row. */
static const uint8_t font5x7[95][5] = {
	{0x00,0x00,0x00,0x00,0x00},{0x00,0x00,0x5F,0x00,0x00},{0x00,0x07,0x00,0x07,0x00},
	{0x14,0x7F,0x14,0x7F,0x14},{0x24,0x2A,0x7F,0x2A,0x12},{0x23,0x13,0x08,0x64,0x62},
	{0x36,0x49,0x55,0x22,0x50},{0x00,0x05,0x03,0x00,0x00},{0x00,0x1C,0x22,0x41,0x00},
	{0x00,0x41,0x22,0x1C,0x00},{0x14,0x08,0x3E,0x08,0x14},{0x08,0x08,0x3E,0x08,0x08},
	{0x00,0x50,0x30,0x00,0x00},{0x08,0x08,0x08,0x08,0x08},{0x00,0x60,0x60,0x00,0x00},
	{0x20,0x10,0x08,0x04,0x02},{0x3E,0x51,0x49,0x45,0x3E},{0x00,0x42,0x7F,0x40,0x00},
	{0x42,0x61,0x51,0x49,0x46},{0x21,0x41,0x45,0x4B,0x31},{0x18,0x14,0x12,0x7F,0x10},
	{0x27,0x45,0x45,0x45,0x39},{0x3C,0x4A,0x49,0x49,0x30},{0x01,0x71,0x09,0x05,0x03},
	{0x36,0x49,0x49,0x49,0x36},{0x06,0x49,0x49,0x29,0x1E},{0x00,0x36,0x36,0x00,0x00},
	{0x00,0x56,0x36,0x00,0x00},{0x08,0x14,0x22,0x41,0x00},{0x14,0x14,0x14,0x14,0x14},
	{0x00,0x41,0x22,0x14,0x08},{0x02,0x01,0x51,0x09,0x06},{0x32,0x49,0x79,0x41,0x3E},
	{0x7E,0x11,0x11,0x11,0x7E},{0x7F,0x49,0x49,0x49,0x36},{0x3E,0x41,0x41,0x41,0x22},
	{0x7F,0x41,0x41,0x22,0x1C},{0x7F,0x49,0x49,0x49,0x41},{0x7F,0x09,0x09,0x09,0x01},
	{0x3E,0x41,0x49,0x49,0x7A},{0x7F,0x08,0x08,0x08,0x7F},{0x00,0x41,0x7F,0x41,0x00},
	{0x20,0x40,0x41,0x3F,0x01},{0x7F,0x08,0x14,0x22,0x41},{0x7F,0x40,0x40,0x40,0x40},
	{0x7F,0x02,0x0C,0x02,0x7F},{0x7F,0x04,0x08,0x10,0x7F},{0x3E,0x41,0x41,0x41,0x3E},
	{0x7F,0x09,0x09,0x09,0x06},{0x3E,0x41,0x51,0x21,0x5E},{0x7F,0x09,0x19,0x29,0x46},
	{0x46,0x49,0x49,0x49,0x31},{0x01,0x01,0x7F,0x01,0x01},{0x3F,0x40,0x40,0x40,0x3F},
	{0x1F,0x20,0x40,0x20,0x1F},{0x3F,0x40,0x38,0x40,0x3F},{0x63,0x14,0x08,0x14,0x63},
	{0x07,0x08,0x70,0x08,0x07},{0x61,0x51,0x49,0x45,0x43},{0x00,0x7F,0x41,0x41,0x00},
	{0x02,0x04,0x08,0x10,0x20},{0x00,0x41,0x41,0x7F,0x00},{0x04,0x02,0x01,0x02,0x04},
	{0x40,0x40,0x40,0x40,0x40},{0x00,0x01,0x02,0x04,0x00},{0x20,0x54,0x54,0x54,0x78},
	{0x7F,0x48,0x44,0x44,0x38},{0x38,0x44,0x44,0x44,0x20},{0x38,0x44,0x44,0x48,0x7F},
	{0x38,0x54,0x54,0x54,0x18},{0x08,0x7E,0x09,0x01,0x02},{0x0C,0x52,0x52,0x52,0x3E},
	{0x7F,0x08,0x04,0x04,0x78},{0x00,0x44,0x7D,0x40,0x00},{0x20,0x40,0x44,0x3D,0x00},
	{0x7F,0x10,0x28,0x44,0x00},{0x00,0x41,0x7F,0x40,0x00},{0x7C,0x04,0x18,0x04,0x78},
	{0x7C,0x08,0x04,0x04,0x78},{0x38,0x44,0x44,0x44,0x38},{0x7C,0x14,0x14,0x14,0x08},
	{0x08,0x14,0x14,0x18,0x7C},{0x7C,0x08,0x04,0x04,0x08},{0x48,0x54,0x54,0x54,0x20},
	{0x04,0x3F,0x44,0x40,0x20},{0x3C,0x40,0x40,0x20,0x7C},{0x1C,0x20,0x40,0x20,0x1C},
	{0x3C,0x40,0x30,0x40,0x3C},{0x44,0x28,0x10,0x28,0x44},{0x0C,0x50,0x50,0x50,0x3C},
	{0x44,0x64,0x54,0x4C,0x44},{0x00,0x08,0x36,0x41,0x00},{0x00,0x00,0x7F,0x00,0x00},
	{0x00,0x41,0x36,0x08,0x00},{0x10,0x08,0x08,0x10,0x08},
};

int aim_canvas_init(aim_canvas *c, int w, int h, aim_rgb bg)
{
	if (w <= 0 || h <= 0 || w > 32768 || h > 32768)
		return aim_error("canvas size %dx%d out of range", w, h);
	c->w = w;
	c->h = h;
	c->px = malloc((size_t)w * h * 3);
	if (!c->px)
		return aim_error("out of memory for a %dx%d picture", w, h);
	aim_fill_rect(c, 0, 0, w, h, bg);
	return 0;
}

void aim_canvas_free(aim_canvas *c)
{
	free(c->px);
	c->px = NULL;
}

static inline void put(aim_canvas *c, int x, int y, aim_rgb col)
{
	if (x < 0 || y < 0 || x >= c->w || y >= c->h)
		return;
	uint8_t *p = c->px + ((size_t)y * c->w + x) * 3;
	p[0] = col.r;
	p[1] = col.g;
	p[2] = col.b;
}

void aim_fill_rect(aim_canvas *c, int x, int y, int w, int h, aim_rgb col)
{
	int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
	int x1 = x + w > c->w ? c->w : x + w, y1 = y + h > c->h ? c->h : y + h;
	for (int j = y0; j < y1; j++)
		for (int i = x0; i < x1; i++)
			put(c, i, j, col);
}

void aim_draw_line(aim_canvas *c, int x0, int y0, int x1, int y1, aim_rgb col)
{
	int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
	int err = dx + dy;
	for (int guard = 0; guard < 1 << 17; guard++) {
		put(c, x0, y0, col);
		if (x0 == x1 && y0 == y1)
			break;
		int e2 = 2 * err;
		if (e2 >= dy) {
			err += dy;
			x0 += sx;
		}
		if (e2 <= dx) {
			err += dx;
			y0 += sy;
		}
	}
}

int aim_text_width(const char *text, int scale) { return (int)strlen(text) * 6 * scale; }

int aim_draw_text(aim_canvas *c, int x, int y, int scale, aim_rgb col, const char *text)
{
	int x0 = x;
	for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
		int ch = *s >= 0x20 && *s <= 0x7e ? *s - 0x20 : '?' - 0x20;
		for (int cx = 0; cx < 5; cx++)
			for (int cy = 0; cy < 7; cy++)
				if (font5x7[ch][cx] >> cy & 1)
					aim_fill_rect(c, x + cx * scale, y + cy * scale, scale, scale, col);
		x += 6 * scale;
	}
	return x - x0;
}

void aim_blit(aim_canvas *c, int x, int y, const uint8_t *img, int w, int h, int channels, int scale)
{
	for (int j = 0; j < h * scale; j++)
		for (int i = 0; i < w * scale; i++) {
			const uint8_t *p = img + ((size_t)(j / scale) * w + i / scale) * channels;
			aim_rgb col = channels >= 3 ? (aim_rgb){p[0], p[1], p[2]} : (aim_rgb){p[0], p[0], p[0]};
			put(c, x + i, y + j, col);
		}
}

static void png_err(png_structp png, png_const_charp msg)
{
	aim_error("PNG encoder: %s", msg);
	png_longjmp(png, 1);
}

int aim_canvas_write_png(const aim_canvas *c, const char *path)
{
	aim_outfile o;
	if (aim_out_open(&o, path, 1))
		return AIM_ERR;
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_err, NULL);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!png || !info) {
		png_destroy_write_struct(&png, &info);
		aim_out_abort(&o);
		return aim_error("%s: out of memory", path);
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		aim_out_abort(&o);
		return aim_error_prefix("%s", path);
	}
	png_init_io(png, o.fp);
	png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < c->h; y++)
		png_write_row(png, c->px + (size_t)y * c->w * 3);
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	return aim_out_commit(&o);
}

/* ---- line charts ----------------------------------------------------------- */

static double nice_step(double range, int ticks)
{
	double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
	return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void fmt_num(char *buf, size_t n, double v)
{
	if (v != 0 && (fabs(v) >= 1e5 || fabs(v) < 1e-3))
		snprintf(buf, n, "%.1e", v);
	else
		snprintf(buf, n, "%g", v);
}

int aim_plot_lines(const char *path, const char *title, const char *xlabel, const double *x, int n,
		   const aim_series *series, int nseries, int log_y)
{
	static const aim_rgb colors[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},
					  {214, 39, 40},  {148, 103, 189}, {140, 86, 75}};
	const aim_rgb white = {255, 255, 255}, black = {0, 0, 0}, grid = {225, 225, 225};
	const int W = 900, H = 540, L = 80, R = 20, T = 40, B = 60;
	aim_canvas c;
	if (aim_canvas_init(&c, W, H, white))
		return AIM_ERR;
	double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
	for (int i = 0; i < n; i++) {
		if (isfinite(x[i])) {
			xmin = fmin(xmin, x[i]);
			xmax = fmax(xmax, x[i]);
		}
		for (int s = 0; s < nseries; s++) {
			double v = series[s].y[i];
			if (!isfinite(v) || (log_y && v <= 0))
				continue;
			v = log_y ? log10(v) : v;
			ymin = fmin(ymin, v);
			ymax = fmax(ymax, v);
		}
	}
	if (!isfinite(xmin)) xmin = 0, xmax = 1;
	if (!isfinite(ymin)) ymin = 0, ymax = 1;
	if (xmax <= xmin) xmax = xmin + 1;
	if (ymax <= ymin) ymax = ymin + (log_y ? 1 : fabs(ymin) * 0.1 + 1);
	double pad = (ymax - ymin) * 0.05;
	ymin -= pad;
	ymax += pad;
	int pw = W - L - R, ph = H - T - B;
#define PX(v) (L + (int)lround(((v) - xmin) / (xmax - xmin) * pw))
#define PY(v) (T + ph - (int)lround(((v) - ymin) / (ymax - ymin) * ph))
	char buf[64];
	double xs = nice_step(xmax - xmin, 8);
	for (double v = ceil(xmin / xs) * xs; v <= xmax + 1e-9 * xs; v += xs) {
		aim_draw_line(&c, PX(v), T, PX(v), T + ph, grid);
		fmt_num(buf, sizeof buf, v);
		aim_draw_text(&c, PX(v) - aim_text_width(buf, 1) / 2, T + ph + 8, 1, black, buf);
	}
	double ys = nice_step(ymax - ymin, 6);
	for (double v = ceil(ymin / ys) * ys; v <= ymax + 1e-9 * ys; v += ys) {
		aim_draw_line(&c, L, PY(v), L + pw, PY(v), grid);
		fmt_num(buf, sizeof buf, log_y ? pow(10, v) : v);
		aim_draw_text(&c, L - 6 - aim_text_width(buf, 1), PY(v) - 3, 1, black, buf);
	}
	aim_draw_line(&c, L, T, L, T + ph, black);
	aim_draw_line(&c, L, T + ph, L + pw, T + ph, black);
	for (int s = 0; s < nseries; s++) {
		aim_rgb col = colors[s % 6];
		int have = 0, px0 = 0, py0 = 0;
		for (int i = 0; i < n; i++) {
			double v = series[s].y[i];
			if (!isfinite(v) || !isfinite(x[i]) || (log_y && v <= 0)) {
				have = 0;
				continue;
			}
			int px = PX(x[i]), py = PY(log_y ? log10(v) : v);
			if (have)
				aim_draw_line(&c, px0, py0, px, py, col);
			else
				put(&c, px, py, col);
			px0 = px, py0 = py, have = 1;
		}
		aim_fill_rect(&c, L + pw - 160, T + 8 + s * 14, 12, 8, col);
		aim_draw_text(&c, L + pw - 142, T + 8 + s * 14, 1, black, series[s].label ? series[s].label : "");
	}
#undef PX
#undef PY
	if (title)
		aim_draw_text(&c, L, 12, 2, black, title);
	if (xlabel)
		aim_draw_text(&c, L + pw / 2 - aim_text_width(xlabel, 1) / 2, H - 22, 1, black, xlabel);
	int rc = aim_canvas_write_png(&c, path);
	aim_canvas_free(&c);
	return rc;
}
