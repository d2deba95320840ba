/* Drawing for the pictures the tools leave behind (loss curves, prediction
 * grids, confusion matrices, contact sheets): an RGB canvas, rectangles,
 * lines, a built-in 5x7 bitmap font, and atomic PNG output via libpng. */
#ifndef AIM_DRAW_H
#define AIM_DRAW_H

#include <stdint.h>

typedef struct {
	int w, h;
	uint8_t *px; /* h rows of w RGB triplets */
} aim_canvas;

typedef struct { uint8_t r, g, b; } aim_rgb;

int aim_canvas_init(aim_canvas *c, int w, int h, aim_rgb background);
void aim_canvas_free(aim_canvas *c);
void aim_fill_rect(aim_canvas *c, int x, int y, int w, int h, aim_rgb color);
void aim_draw_line(aim_canvas *c, int x0, int y0, int x1, int y1, aim_rgb color);
/* Text in the 5x7 font, each font pixel drawn as scale x scale; printable
 * ASCII only (others drawn as '?'). Returns the width drawn in pixels. */
int aim_draw_text(aim_canvas *c, int x, int y, int scale, aim_rgb color, const char *text);
int aim_text_width(const char *text, int scale);
/* Copy an image (rgb: 3 channels, or 1 channel grey) scaled by an integer
 * factor with nearest-neighbour, top-left at (x, y), clipped. */
void aim_blit(aim_canvas *c, int x, int y, const uint8_t *img, int w, int h, int channels, int scale);
/* Write the canvas as PNG, atomically (temporary file + rename). */
int aim_canvas_write_png(const aim_canvas *c, const char *path);

/* A line chart of one or more series (x shared), with axes, ticks and a
 * title; log_y draws the y axis logarithmically. Series are drawn in
 * distinct colours; NaN values are gaps. */
typedef struct {
	const char *label;
	const double *y;
} aim_series;
int aim_plot_lines(const char *path, const char *title, const char *xlabel,
		   const double *x, int n, const aim_series *series, int nseries, int log_y);

#endif
