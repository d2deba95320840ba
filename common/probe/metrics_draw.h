/* The confusion matrix as a picture (aim-eval --confusion FILE.png). */
#ifndef AIM_METRICS_DRAW_H
#define AIM_METRICS_DRAW_H

#include "metrics.h"

/* Rows are true classes, columns predicted ones; each cell's shade is its
 * share of the row (white 0 → dark blue 1). Class names (may be NULL) label
 * the axes when the cells are large enough to carry them. Written
 * atomically as PNG. */
int aim_confusion_png(const aim_metrics *m, char *const *names, const char *path,
		      const char *title);

#endif
