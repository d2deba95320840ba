/* Contact sheet of retrieval results: one row per query, the query image
 * first (framed), then its neighbours best first, each with its score
 * underneath. Images are read from the names the streams carry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "err.h"
#include "fileio.h"
#include "image.h"
#include "retrieve.h"

enum { GAP = 6, TEXT = 12, MAX_ROWS = 256 };

static const aim_rgb WHITE = {255, 255, 255}, GREY = {200, 200, 200}, INK = {20, 20, 20},
		     FRAME = {40, 90, 200};

/* Box-filter the image into a thumb x thumb square (aspect kept, centred). */
static void draw_thumb(aim_canvas *c, int x, int y, int thumb, const aim_image *im)
{
	double s = (double)(im->w > im->h ? im->w : im->h) / thumb;
	if (s < 1)
		s = 1; /* small images are not enlarged */
	int tw = (int)(im->w / s), th = (int)(im->h / s);
	tw = tw < 1 ? 1 : tw;
	th = th < 1 ? 1 : th;
	uint8_t *t = malloc((size_t)tw * th * 3);
	if (!t)
		return;
	for (int ty = 0; ty < th; ty++)
		for (int tx = 0; tx < tw; tx++) {
			int x0 = (int)(tx * s), x1 = (int)((tx + 1) * s), y0 = (int)(ty * s),
			    y1 = (int)((ty + 1) * s);
			x1 = x1 > im->w ? im->w : x1 <= x0 ? x0 + 1 : x1;
			y1 = y1 > im->h ? im->h : y1 <= y0 ? y0 + 1 : y1;
			unsigned long sum[3] = {0, 0, 0}, n = 0;
			for (int sy = y0; sy < y1; sy++)
				for (int sx = x0; sx < x1; sx++, n++)
					for (int ch = 0; ch < 3; ch++)
						sum[ch] += im->px[((size_t)sy * im->w + sx) * im->c +
								  (im->c == 3 ? ch : 0)];
			for (int ch = 0; ch < 3; ch++)
				t[((size_t)ty * tw + tx) * 3 + ch] = (uint8_t)((sum[ch] + n / 2) / n);
		}
	aim_blit(c, x + (thumb - tw) / 2, y + (thumb - th) / 2, t, tw, th, 3, 1);
	free(t);
}

static int load(const char *root, const char *name, aim_image *im)
{
	char *path = NULL, *data = NULL;
	size_t len;
	int rc = AIM_ERR;
	if (!name)
		return AIM_ERR;
	if (root && name[0] != '/') {
		size_t n = strlen(root) + strlen(name) + 2;
		path = malloc(n);
		if (!path)
			return AIM_ERR;
		snprintf(path, n, "%s/%s", root, name);
	}
	if (aim_read_file(path ? path : name, &data, &len) == 0)
		rc = aim_image_decode(data, len, 3, AIM_IMAGE_DEFAULT_MAX_PIXELS, im);
	free(data);
	free(path);
	return rc;
}

/* Text clipped to the cell width. */
static void label(aim_canvas *c, int x, int y, int thumb, const char *s)
{
	char buf[64];
	int max = thumb / 6;
	snprintf(buf, sizeof buf, "%.*s", max < 63 ? max : 63, s);
	aim_draw_text(c, x, y, 1, INK, buf);
}

int aim_contact_sheet(const char *path, const aim_results *r, const char *root, int thumb,
		      int *missing)
{
	int64_t rows = r->m < MAX_ROWS ? r->m : MAX_ROWS;
	int cell = thumb + GAP, W = (r->k + 1) * cell + 2 * GAP, H = (int)rows * (thumb + TEXT + GAP) + GAP;
	aim_canvas c;
	if (rows == 0)
		return aim_error("%s: no queries to draw", path);
	if (aim_canvas_init(&c, W, H, WHITE))
		return AIM_ERR;
	*missing = 0;
	for (int64_t i = 0; i < rows; i++) {
		int y = GAP + (int)i * (thumb + TEXT + GAP);
		for (int j = -1; j < r->k; j++) {
			int x = GAP + (j + 1) * cell + (j >= 0 ? GAP : 0);
			const char *name = j < 0 ? r->qname[i] : r->nname[i * r->k + j];
			if (j >= 0 && !name)
				continue; /* an empty slot (fewer than k found) */
			aim_image im = {0};
			if (load(root, name, &im) == 0) {
				draw_thumb(&c, x, y, thumb, &im);
				aim_image_free(&im);
			} else {
				aim_fill_rect(&c, x, y, thumb, thumb, GREY);
				aim_draw_text(&c, x + thumb / 2 - 3, y + thumb / 2 - 4, 1, INK, "?");
				(*missing)++;
			}
			if (j < 0) {
				aim_draw_line(&c, x - 2, y - 2, x + thumb + 1, y - 2, FRAME);
				aim_draw_line(&c, x - 2, y + thumb + 1, x + thumb + 1, y + thumb + 1, FRAME);
				aim_draw_line(&c, x - 2, y - 2, x - 2, y + thumb + 1, FRAME);
				aim_draw_line(&c, x + thumb + 1, y - 2, x + thumb + 1, y + thumb + 1, FRAME);
				label(&c, x, y + thumb + 3, thumb, name);
			} else {
				char s[32];
				snprintf(s, sizeof s, "%.3f", r->score[i * r->k + j]);
				label(&c, x, y + thumb + 3, thumb, s);
			}
		}
	}
	int rc = aim_canvas_write_png(&c, path);
	aim_canvas_free(&c);
	return rc;
}
