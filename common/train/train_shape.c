/* The shape of a new pretraining run (train_shape.h). */
#include "train_shape.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "err.h"

/* Small CPU shapes beside the published ones. */
static const aim_train_preset presets[] = {
	{"fmnist", 28, 7, 1, 192, 6, 3, 1, 192},
	{"vit-s", 224, 14, 3, 384, 12, 6, 2, 384},
	{"aim-600M", 224, 14, 3, 1536, 24, 12, 12, 2048},
	{"aim-1B", 224, 14, 3, 2048, 24, 16, 12, 2048},
	{"aim-3B", 224, 14, 3, 3072, 24, 24, 12, 2048},
	{"aim-7B", 224, 14, 3, 4096, 32, 32, 12, 2048},
};

const aim_train_preset *aim_train_preset_find(const char *name)
{
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
		if (!strcasecmp(name, presets[i].name))
			return &presets[i];
	return NULL;
}

/* The architecture of a new run: preset, then flags by hand; geometry
 * from the preset when it fixes one, else from the stream. */
int aim_train_new_config(const aim_train_shape *o, const aim_geometry *g, aim_config *c,
			 int *head_blocks, int *head_dim)
{
	memset(c, 0, sizeof *c);
	int img = 0, patch = 0, channels = 0;
	*head_blocks = 2;
	*head_dim = 0;
	c->dim = 0;
	const aim_train_preset *p = o->preset ? aim_train_preset_find(o->preset) : NULL;
	if (p) {
		img = p->img;
		patch = p->patch;
		channels = p->channels;
		c->dim = p->dim;
		c->depth = p->depth;
		c->heads = p->heads;
		*head_blocks = p->head_blocks;
		*head_dim = p->head_dim;
	}
	if (o->dim)
		c->dim = o->dim;
	if (o->depth)
		c->depth = o->depth;
	if (o->heads)
		c->heads = o->heads;
	if (!c->dim || !c->depth || !c->heads)
		return aim_error("give --preset or all of --dim, --depth and --heads");
	if (o->head_blocks >= 0)
		*head_blocks = o->head_blocks;
	if (o->head_dim)
		*head_dim = o->head_dim;
	if (!*head_dim || o->head == AIM_HEAD_NONE)
		*head_dim = c->dim; /* none: the head maps the trunk's width to pixels */
	if (o->head == AIM_HEAD_NONE)
		*head_blocks = 0;
	if (o->arch && !strcmp(o->arch, "aimv2")) {
		c->norm = AIM_NORM_RMS;
		c->mlp = AIM_MLP_SWIGLU;
		c->pos = AIM_POS_LEARNED;
		c->norm_eps = 1e-5f;
	}
	if (o->mlp_ratio > 0) {
		c->mlp_hidden = (int)lround(o->mlp_ratio * c->dim);
	} else if (c->mlp == AIM_MLP_SWIGLU) {
		/* 8/3 of the width (SwiGLU's three matrices cost GELU's two of
		 * 4x), rounded up to a multiple of 256 when the width is one —
		 * the published AIMv2 widths 2816, 4096, 5632, 8192 — else of 8 */
		int m = c->dim % 256 == 0 ? 256 : 8;
		c->mlp_hidden = (8 * c->dim / 3 + m - 1) / m * m;
	} else {
		c->mlp_hidden = 4 * c->dim;
	}
	if (patch && (g->patch != patch || g->channels != channels ||
		      g->rows * patch != img || g->cols * patch != img)) {
		aim_error("the stream has %d-channel %dx%d patches on a %dx%d grid; preset %s takes "
			  "%d-channel %dx%d patches of %dx%d images",
			  g->channels, g->patch, g->patch, g->rows, g->cols, o->preset, channels,
			  patch, patch, img, img);
		return AIM_ERR;
	}
	c->patch = g->patch;
	c->channels = g->channels;
	c->grid_rows = g->rows;
	c->grid_cols = g->cols;
	c->nprobe = c->depth < 6 ? c->depth : 6;
	for (int i = 0; i < c->nprobe; i++)
		c->probe_layers[i] = c->depth - c->nprobe + i;
	return aim_config_check(c) ? AIM_ERR : AIM_OK;
}

/* The stream must fit the model: same patch, channels and grid. */
int aim_train_check_fit(const aim_config *c, const aim_geometry *g, const char *what)
{
	if (c->patch != g->patch || c->channels != g->channels || c->grid_rows != g->rows ||
	    c->grid_cols != g->cols) {
		aim_error("the input has %d-channel %dx%d patches on a %dx%d grid, but %s takes "
			  "%d-channel %dx%d patches on a %dx%d grid",
			  g->channels, g->patch, g->patch, g->rows, g->cols, what, c->channels,
			  c->patch, c->patch, c->grid_rows, c->grid_cols);
		return AIM_ERR;
	}
	return AIM_OK;
}
