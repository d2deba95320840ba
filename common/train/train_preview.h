/* predictions.png: what the model predicts for a few fixed images.
 * One row per image, three panels: the original; the prefix alone (the
 * rest grey); the prefix followed by the patches the model predicts, each
 * de-normalised with the true patch's own mean and standard deviation (as
 * the norm-pix loss standardised it) and then with the stream's
 * mean/std back to pixels. */
#ifndef AIM_TRAIN_PREVIEW_H
#define AIM_TRAIN_PREVIEW_H

#include "train_step.h"

/* x: n images [n, K, P] of normalised patches; prefix length K/2. */
int aim_preview_write(const char *path, aim_trainer *t, const float *x, int n, long step);

#endif
