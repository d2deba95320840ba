/* The architecture: presets of the published models, JSON in and out. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"

static const struct {
	const char *name;
	int dim, depth, heads;
	int best_first; /* LAYERS_BEST of the release: 6 blocks from here */
} presets[] = {
	{"aim-600M", 1536, 24, 12, 14},
	{"aim-1B", 2048, 24, 16, 12},
	{"aim-3B", 3072, 24, 24, 12},
	{"aim-7B", 4096, 32, 32, 14},
};
#define NPRESETS (int)(sizeof presets / sizeof presets[0])

static void last_layers(aim_config *c, int n)
{
	if (n > c->depth)
		n = c->depth;
	c->nprobe = n;
	for (int i = 0; i < n; i++)
		c->probe_layers[i] = c->depth - n + i;
}

int aim_config_preset(aim_config *c, const char *arch)
{
	for (int i = 0; i < NPRESETS; i++) {
		if (strcasecmp(arch, presets[i].name) != 0)
			continue;
		memset(c, 0, sizeof *c);
		c->grid_rows = c->grid_cols = 224 / 14;
		c->patch = 14;
		c->channels = 3;
		c->dim = presets[i].dim;
		c->depth = presets[i].depth;
		c->heads = presets[i].heads;
		c->mlp_hidden = 4 * c->dim;
		c->num_classes = 1000;
		last_layers(c, 6);
		return AIM_OK;
	}
	return aim_error("unknown architecture '%s' (expected aim-600M, aim-1B, aim-3B or aim-7B)", arch);
}

int aim_config_best_layers(const aim_config *c, int *layers)
{
	for (int i = 0; i < NPRESETS; i++) {
		if (c->dim == presets[i].dim && c->depth == presets[i].depth &&
		    c->heads == presets[i].heads) {
			for (int j = 0; j < 6; j++)
				layers[j] = presets[i].best_first + j;
			return 6;
		}
	}
	return aim_error("'best' layers are known only for the published shapes "
			 "(aim-600M, aim-1B, aim-3B, aim-7B); give the blocks explicitly");
}

int aim_config_parse_layers(const aim_config *c, const char *spec, int *out)
{
	if (!spec) {
		memcpy(out, c->probe_layers, sizeof(int) * (size_t)c->nprobe);
		return c->nprobe;
	}
	if (!strcmp(spec, "all") || !strcmp(spec, "last")) {
		int n = !strcmp(spec, "all") || c->depth < 6 ? c->depth : 6;
		for (int i = 0; i < n; i++)
			out[i] = c->depth - n + i;
		return n;
	}
	if (!strcmp(spec, "best"))
		return aim_config_best_layers(c, out);
	int n = 0;
	const char *p = spec;
	while (*p) {
		char *end;
		long a = strtol(p, &end, 10), b = a;
		if (end == p)
			return aim_error("layers '%s': not a list of blocks (e.g. 3, 0,4, 12-17)", spec);
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p)
				return aim_error("layers '%s': open range", spec);
		}
		if (a < 0 || b < a || b >= c->depth)
			return aim_error("layers '%s': blocks must lie in 0..%d", spec, c->depth - 1);
		for (long i = a; i <= b; i++) {
			if (n >= AIM_MAX_BLOCKS)
				return aim_error("layers '%s': too many blocks", spec);
			out[n++] = (int)i;
		}
		if (*end == ',')
			end++;
		else if (*end)
			return aim_error("layers '%s': not a list of blocks", spec);
		p = end;
	}
	return n ? n : aim_error("layers '%s': empty", spec);
}

static int get_int(json_t *o, const char *key, int *v, int required, const char *what)
{
	json_t *j = json_object_get(o, key);
	if (!j) {
		if (required)
			return aim_error("%s: architecture lacks \"%s\"", what, key);
		return 0;
	}
	if (!json_is_integer(j) || json_integer_value(j) < 0 || json_integer_value(j) > 1 << 24)
		return aim_error("%s: \"%s\" is not a valid integer", what, key);
	*v = (int)json_integer_value(j);
	return 1;
}

int aim_config_from_json(aim_config *c, const char *text, const char *what)
{
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		return aim_error("%s: architecture is not a JSON object (%s)", what, jerr.text);
	}
	memset(c, 0, sizeof *c);
	int rc = AIM_ERR, img_h = 0, img_w = 0;
	json_t *img = json_object_get(o, "img_size");
	if (json_is_integer(img)) {
		img_h = img_w = (int)json_integer_value(img);
	} else if (json_is_array(img) && json_array_size(img) == 2 &&
		   json_is_integer(json_array_get(img, 0)) && json_is_integer(json_array_get(img, 1))) {
		img_h = (int)json_integer_value(json_array_get(img, 0));
		img_w = (int)json_integer_value(json_array_get(img, 1));
	} else {
		aim_error("%s: architecture lacks a valid \"img_size\"", what);
		goto out;
	}
	c->channels = 3;
	if (get_int(o, "patch_size", &c->patch, 1, what) < 0 ||
	    get_int(o, "embed_dim", &c->dim, 1, what) < 0 ||
	    get_int(o, "num_blocks", &c->depth, 1, what) < 0 ||
	    get_int(o, "num_heads", &c->heads, 1, what) < 0 ||
	    get_int(o, "num_channels", &c->channels, 0, what) < 0)
		goto out;
	if (c->patch <= 0 || img_h < c->patch || img_w < c->patch) {
		aim_error("%s: img_size %dx%d and patch_size %d do not make a grid", what, img_h,
			  img_w, c->patch);
		goto out;
	}
	c->grid_rows = img_h / c->patch;
	c->grid_cols = img_w / c->patch;
	if (c->depth < 1 || c->depth > AIM_MAX_BLOCKS) {
		aim_error("%s: num_blocks %d out of range 1..%d", what, c->depth, AIM_MAX_BLOCKS);
		goto out;
	}
	c->mlp_hidden = 4 * c->dim;
	json_t *ratio = json_object_get(o, "mlp_ratio");
	if (ratio) {
		if (!json_is_number(ratio) || json_number_value(ratio) <= 0) {
			aim_error("%s: \"mlp_ratio\" is not a positive number", what);
			goto out;
		}
		c->mlp_hidden = (int)(json_number_value(ratio) * c->dim);
	}
	if (get_int(o, "mlp_hidden_dim", &c->mlp_hidden, 0, what) < 0)
		goto out;
	json_t *bias = json_object_get(o, "use_bias");
	if (bias) {
		if (!json_is_boolean(bias)) {
			aim_error("%s: \"use_bias\" is not a boolean", what);
			goto out;
		}
		c->proj_bias = c->mlp_bias = json_is_true(bias);
	}
	json_t *pl = json_object_get(o, "probe_layers");
	if (!pl) {
		last_layers(c, 6);
	} else if (json_is_integer(pl)) {
		int n = (int)json_integer_value(pl);
		if (n < 1 || n > c->depth) {
			aim_error("%s: probe_layers %d out of range 1..%d", what, n, c->depth);
			goto out;
		}
		last_layers(c, n);
	} else if (json_is_array(pl) && json_array_size(pl) >= 1 &&
		   json_array_size(pl) <= (size_t)c->depth) {
		c->nprobe = (int)json_array_size(pl);
		for (int i = 0; i < c->nprobe; i++) {
			json_t *e = json_array_get(pl, i);
			if (!json_is_integer(e) || json_integer_value(e) < 0 ||
			    json_integer_value(e) >= c->depth) {
				aim_error("%s: probe_layers[%d] is not a block index below %d", what, i,
					  c->depth);
				goto out;
			}
			c->probe_layers[i] = (int)json_integer_value(e);
		}
	} else {
		aim_error("%s: \"probe_layers\" must be a count or a list of blocks", what);
		goto out;
	}
	c->num_classes = 1000;
	if (get_int(o, "num_classes", &c->num_classes, 0, what) < 0)
		goto out;
	rc = aim_config_check(c);
	if (rc < 0)
		aim_error_prefix("%s", what);
out:
	json_decref(o);
	return rc;
}

char *aim_config_to_json(const aim_config *c)
{
	json_t *o = json_object();
	json_t *img = json_array();
	json_array_append_new(img, json_integer((json_int_t)c->grid_rows * c->patch));
	json_array_append_new(img, json_integer((json_int_t)c->grid_cols * c->patch));
	json_object_set_new(o, "img_size", img);
	json_object_set_new(o, "patch_size", json_integer(c->patch));
	json_object_set_new(o, "embed_dim", json_integer(c->dim));
	json_object_set_new(o, "num_blocks", json_integer(c->depth));
	json_object_set_new(o, "num_heads", json_integer(c->heads));
	json_object_set_new(o, "num_channels", json_integer(c->channels));
	json_object_set_new(o, "mlp_hidden_dim", json_integer(c->mlp_hidden));
	json_object_set_new(o, "use_bias", json_boolean(c->proj_bias));
	json_t *pl = json_array();
	for (int i = 0; i < c->nprobe; i++)
		json_array_append_new(pl, json_integer(c->probe_layers[i]));
	json_object_set_new(o, "probe_layers", pl);
	json_object_set_new(o, "num_classes", json_integer(c->num_classes));
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

int aim_config_check(const aim_config *c)
{
	if (c->patch < 1 || c->patch > 1024)
		return aim_error("patch size %d out of range", c->patch);
	if (c->channels < 1 || c->channels > 64)
		return aim_error("channel count %d out of range", c->channels);
	if (c->grid_rows < 1 || c->grid_cols < 1)
		return aim_error("grid %dx%d is empty", c->grid_rows, c->grid_cols);
	if (c->dim < 4 || c->dim % 4)
		return aim_error("embed_dim %d is not a positive multiple of 4 (the 2-D sin-cos "
				 "table needs one)", c->dim);
	if (c->heads < 1 || c->dim % c->heads)
		return aim_error("embed_dim %d is not divisible by num_heads %d", c->dim, c->heads);
	if (c->depth < 1 || c->depth > AIM_MAX_BLOCKS)
		return aim_error("num_blocks %d out of range 1..%d", c->depth, AIM_MAX_BLOCKS);
	if (c->mlp_hidden < 1)
		return aim_error("MLP width %d is not positive", c->mlp_hidden);
	for (int i = 0; i < c->nprobe; i++)
		if (c->probe_layers[i] < 0 || c->probe_layers[i] >= c->depth)
			return aim_error("probe layer %d is not a block (0..%d)", c->probe_layers[i],
					 c->depth - 1);
	return AIM_OK;
}
