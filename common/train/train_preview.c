/* predictions.png (train_preview.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "err.h"
#include "train_loss.h"
#include "train_preview.h"

/* Normalised patch values back to 8-bit pixels of an interleaved image. */
static void paint_patch(uint8_t *img, const aim_geometry *g, int k, const float *v, int grey)
{
	const int p = g->patch, C = g->channels, W = g->cols * p;
	const int r0 = (k / g->cols) * p, c0 = (k % g->cols) * p;
	for (int c = 0; c < C; c++)
		for (int y = 0; y < p; y++)
			for (int x = 0; x < p; x++) {
				float u = grey ? 0.5f
					       : (v[(c * p + y) * p + x] * g->std[c] + g->mean[c]);
				float px = roundf(u * 255.0f);
				px = px < 0 ? 0 : px > 255 ? 255 : px;
				img[((size_t)(r0 + y) * W + c0 + x) * C + c] = (uint8_t)px;
			}
}

int aim_preview_write(const char *path, aim_trainer *t, const float *x, int n, long step)
{
	const aim_geometry *g = &t->geom;
	const int K = g->K, P = g->P, S = K / 2 > 0 ? K / 2 : 1;
	const int H = g->rows * g->patch, W = g->cols * g->patch;
	int scale = 1;
	while (H * scale < 96 && scale < 16)
		scale++;
	const int pad = 8, top = 24, cw = W * scale, ch = H * scale;
	float *pred = malloc(sizeof(float) * (size_t)n * K * P);
	float *stats = malloc(sizeof(float) * (size_t)n * K * 2);
	float *tmp = malloc(sizeof(float) * (size_t)n * K * P);
	float *v = malloc(sizeof(float) * P);
	uint8_t *img = malloc((size_t)H * W * g->channels);
	unsigned char *given = malloc((size_t)n * K);
	aim_canvas cv = {0};
	int rc = AIM_ERR;
	if (!pred || !stats || !tmp || !v || !img || !given) {
		aim_error("out of memory");
		goto out;
	}
	if (aim_trainer_predict(t, x, n, S, pred, given))
		goto out;
	int shown = 0;
	for (int k = 0; k < K; k++)
		shown += given[k];
	aim_pixloss_targets(tmp, x, (long)n * K, P, 1, stats);
	if (aim_canvas_init(&cv, pad + 3 * (cw + pad), top + n * (ch + pad),
			    (aim_rgb){255, 255, 255}))
		goto out;
	char title[128];
	snprintf(title, sizeof title, "step %ld: original | %s (%d of %d) | predicted", step,
		 t->v.objective == AIM_OBJ_MASKED ? "visible" : "prefix", shown, K);
	aim_draw_text(&cv, pad, 8, 1, (aim_rgb){0, 0, 0}, title);
	for (int i = 0; i < n; i++) {
		const float *xi = x + (size_t)i * K * P;
		for (int panel = 0; panel < 3; panel++) {
			for (int k = 0; k < K; k++) { /* grid place k */
				const float *src = xi + (size_t)k * P;
				const int hidden = !given[(size_t)i * K + k];
				if (panel == 2 && hidden) {
					const float *pr = pred + ((size_t)i * K + k) * P;
					const float *st = stats + ((size_t)i * K + k) * 2;
					for (int j = 0; j < P; j++)
						v[j] = t->norm_pix ? pr[j] * st[1] + st[0] : pr[j];
					src = v;
				}
				paint_patch(img, g, k, src, panel == 1 && hidden);
			}
			aim_blit(&cv, pad + panel * (cw + pad), top + i * (ch + pad), img, W, H,
				 g->channels, scale);
		}
	}
	rc = aim_canvas_write_png(&cv, path);
out:
	aim_canvas_free(&cv);
	free(pred);
	free(stats);
	free(tmp);
	free(v);
	free(img);
	free(given);
	return rc;
}
