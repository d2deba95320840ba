/* Confusion matrix picture (metrics_draw.h). */
#include "metrics_draw.h"

#include <stdio.h>
#include <string.h>

#include "draw.h"
#include "err.h"

/* Labels are cut to 16 characters so long class names keep the axis narrow. */
static void cut_label(char cut[17], const char *s)
{
	size_t n = strlen(s);
	if (n > 16)
		n = 16;
	memcpy(cut, s, n);
	cut[n] = 0;
}

int aim_confusion_png(const aim_metrics *m, char *const *names, const char *path,
		      const char *title)
{
	int C = m->classes;
	/* cells between 1 and 24 pixels, the whole matrix near 720 pixels */
	int cell = 720 / C;
	if (cell > 24)
		cell = 24;
	if (cell < 1)
		cell = 1;
	int labels = cell >= 9;
	int margin = 10, label_w = 0;
	char buf[64];
	if (labels)
		for (int c = 0; c < C; c++) {
			const char *s = names ? names[c] : (snprintf(buf, sizeof buf, "%d", c), buf);
			char cut[17];
			cut_label(cut, s);
			int w = aim_text_width(cut, 1);
			if (w > label_w)
				label_w = w;
		}
	int left = margin + (labels ? label_w + 6 : 0) + 12, top = margin + 24;
	int W = left + C * cell + margin, H = top + C * cell + margin + 14;
	if (W < 320)
		W = 320;
	aim_canvas cv;
	if (aim_canvas_init(&cv, W, H, (aim_rgb){255, 255, 255}))
		return AIM_ERR;
	aim_draw_text(&cv, margin, margin, 2, (aim_rgb){0, 0, 0}, title ? title : "confusion");
	for (int t = 0; t < C; t++) {
		int64_t row = aim_metrics_class_count(m, t);
		for (int p = 0; p < C; p++) {
			double f = row ? (double)m->confusion[(int64_t)t * C + p] / (double)row : 0;
			aim_rgb col = {(uint8_t)(255 - 247 * f), (uint8_t)(255 - 207 * f),
				       (uint8_t)(255 - 148 * f)};
			aim_fill_rect(&cv, left + p * cell, top + t * cell, cell, cell, col);
		}
		if (labels) {
			const char *s = names ? names[t] : (snprintf(buf, sizeof buf, "%d", t), buf);
			char cut[17];
			cut_label(cut, s);
			aim_draw_text(&cv, margin + 12, top + t * cell + (cell - 7) / 2, 1,
				      (aim_rgb){0, 0, 0}, cut);
		}
	}
	aim_rgb grey = {160, 160, 160};
	aim_draw_line(&cv, left - 1, top - 1, left + C * cell, top - 1, grey);
	aim_draw_line(&cv, left - 1, top + C * cell, left + C * cell, top + C * cell, grey);
	aim_draw_line(&cv, left - 1, top - 1, left - 1, top + C * cell, grey);
	aim_draw_line(&cv, left + C * cell, top - 1, left + C * cell, top + C * cell, grey);
	aim_draw_text(&cv, left, top + C * cell + 5, 1, (aim_rgb){80, 80, 80},
		      "rows: true class   columns: predicted");
	int rc = aim_canvas_write_png(&cv, path);
	aim_canvas_free(&cv);
	return rc;
}
