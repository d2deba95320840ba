/* The architecture: presets of the published models, JSON in and out. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* AIMv2 (apple/ml-aim aim-v2, models.py): head dim 128 in every size. */
static const struct {
	const char *size;
	int dim, depth, heads, mlp_hidden;
} v2_presets[] = {
	{"large", 1024, 24, 8, 2816},
	{"huge", 1536, 24, 12, 4096},
	{"1B", 2048, 24, 16, 5632},
	{"3B", 3072, 24, 24, 8192},
};
#define NV2 (int)(sizeof v2_presets / sizeof v2_presets[0])

/* a and b equal without case, '_' matching '-' */
static int same_name(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		int x = *a == '_' ? '-' : tolower((unsigned char)*a);
		int y = *b == '_' ? '-' : tolower((unsigned char)*b);
		if (x != y)
			return 0;
	}
	return *a == *b;
}

static int v2_preset(aim_config *c, const char *arch)
{
	static const char *res[] = {"224", "336", "448", "native"};
	for (int i = 0; i < NV2; i++)
		for (int r = 0; r < 4; r++) {
			char name[64];
			snprintf(name, sizeof name, "aimv2-%s-patch14-%s", v2_presets[i].size, res[r]);
			if (!same_name(arch, name) || (r == 3 && i != 0))
				continue;
			memset(c, 0, sizeof *c);
			int px = r == 3 ? 224 : atoi(res[r]);
			c->grid_rows = c->grid_cols = px / 14;
			c->patch = 14;
			c->channels = 3;
			c->dim = v2_presets[i].dim;
			c->depth = v2_presets[i].depth;
			c->heads = v2_presets[i].heads;
			c->mlp_hidden = v2_presets[i].mlp_hidden;
			c->norm = AIM_NORM_RMS;
			c->mlp = AIM_MLP_SWIGLU;
			c->pos = r == 3 ? AIM_POS_SINCOS : AIM_POS_LEARNED;
			c->norm_eps = 1e-5f;
			last_layers(c, 1);
			return 1;
		}
	return 0;
}

float aim_config_eps(const aim_config *c)
{
	if (c->norm_eps > 0)
		return c->norm_eps;
	return c->norm == AIM_NORM_RMS ? 1e-5f : 1e-6f;
}

const char *aim_config_family(const aim_config *c)
{
	return c->norm == AIM_NORM_RMS || c->mlp == AIM_MLP_SWIGLU ? "aimv2" : "aim-v1";
}

int aim_config_preset(aim_config *c, const char *arch)
{
	if (v2_preset(c, arch))
		return AIM_OK;
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
	return aim_error("unknown architecture '%s' (expected aim-600M, aim-1B, aim-3B, aim-7B, "
			 "or aimv2-{large,huge,1B,3B}-patch14-{224,336,448}, "
			 "aimv2-large-patch14-native)", arch);
}

int aim_config_best_layers(const aim_config *c, int *layers)
{
	for (int i = 0; i < NPRESETS && c->norm == AIM_NORM_LAYER; i++) {
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

static int get_bool(json_t *o, const char *key, int *v, const char *what)
{
	json_t *j = json_object_get(o, key);
	if (!j)
		return 0;
	if (!json_is_boolean(j))
		return aim_error("%s: \"%s\" is not a boolean", what, key);
	*v = json_is_true(j);
	return 1;
}

/* The Hugging Face config.json of AIMv2: model_type "aimv2" (the ml-aim
 * release: qkv_bias, use_bias) or "aimv2_vision_model" (transformers:
 * qkv_bias, mlp_bias, is_native). The family is fixed; the position table
 * kind comes from the weights (the loader). image_size defaults to 224 as
 * in both configuration classes. */
static int from_hf_v2(aim_config *c, json_t *o, const char *what)
{
	int img = 224, bias = 0;
	c->channels = 3;
	if (get_int(o, "hidden_size", &c->dim, 1, what) < 0 ||
	    get_int(o, "intermediate_size", &c->mlp_hidden, 1, what) < 0 ||
	    get_int(o, "num_hidden_layers", &c->depth, 1, what) < 0 ||
	    get_int(o, "num_attention_heads", &c->heads, 1, what) < 0 ||
	    get_int(o, "patch_size", &c->patch, 1, what) < 0 ||
	    get_int(o, "num_channels", &c->channels, 0, what) < 0 ||
	    get_int(o, "image_size", &img, 0, what) < 0 ||
	    get_bool(o, "qkv_bias", &c->qkv_bias, what) < 0 ||
	    get_bool(o, "use_bias", &bias, what) < 0 || get_bool(o, "mlp_bias", &bias, what) < 0)
		return AIM_ERR;
	c->proj_bias = c->mlp_bias = bias;
	json_t *eps = json_object_get(o, "rms_norm_eps");
	c->norm_eps = 1e-5f;
	if (eps) {
		if (!json_is_number(eps) || json_number_value(eps) <= 0 || json_number_value(eps) > 1)
			return aim_error("%s: \"rms_norm_eps\" is not a number in (0, 1]", what);
		c->norm_eps = (float)json_number_value(eps);
	}
	if (c->patch <= 0 || img < c->patch)
		return aim_error("%s: image_size %d and patch_size %d do not make a grid", what, img,
				 c->patch);
	if (c->depth < 1 || c->depth > AIM_MAX_BLOCKS)
		return aim_error("%s: num_hidden_layers %d out of range 1..%d", what, c->depth,
				 AIM_MAX_BLOCKS);
	c->grid_rows = c->grid_cols = img / c->patch;
	c->norm = AIM_NORM_RMS;
	c->mlp = AIM_MLP_SWIGLU;
	last_layers(c, 1);
	return AIM_OK;
}

/* timm's config.json names its architecture ("aimv2_large_patch14_224",
 * maybe with a ".tag"): the shape is that preset's. */
static int from_timm(aim_config *c, json_t *o, const char *what)
{
	json_t *a = json_object_get(o, "architecture");
	if (!json_is_string(a))
		return aim_error("%s: \"architecture\" is not a string", what);
	char name[96];
	snprintf(name, sizeof name, "%s", json_string_value(a));
	char *dot = strchr(name, '.');
	if (dot)
		*dot = 0;
	if (strncasecmp(name, "aimv2", 5) != 0 || aim_config_preset(c, name) < 0)
		return aim_error("%s: timm architecture '%s' is not a published AIMv2 model "
				 "(aimv2_{large,huge,1b,3b}_patch14_{224,336,448})", what,
				 json_string_value(a));
	/* model_args (what the model was created with) override the preset,
	 * as timm.create_model(architecture, **model_args) does */
	json_t *ma = json_object_get(o, "model_args");
	if (!ma)
		return AIM_OK;
	if (!json_is_object(ma))
		return aim_error("%s: \"model_args\" is not an object", what);
	int img = -1, patch = c->patch;
	json_t *im = json_object_get(ma, "img_size");
	if (im && !json_is_integer(im))
		return aim_error("%s: model_args.img_size is not an integer", what);
	if (im)
		img = (int)json_integer_value(im);
	if (get_int(ma, "patch_size", &patch, 0, what) < 0 ||
	    get_int(ma, "in_chans", &c->channels, 0, what) < 0 ||
	    get_int(ma, "embed_dim", &c->dim, 0, what) < 0 ||
	    get_int(ma, "depth", &c->depth, 0, what) < 0 ||
	    get_int(ma, "num_heads", &c->heads, 0, what) < 0)
		return AIM_ERR;
	if (img < 0)
		img = c->grid_rows * c->patch;
	if (patch < 1 || img < patch)
		return aim_error("%s: model_args img_size %d and patch_size %d do not make a grid",
				 what, img, patch);
	c->patch = patch;
	c->grid_rows = c->grid_cols = img / patch;
	json_t *ratio = json_object_get(ma, "mlp_ratio");
	if (ratio) {
		if (!json_is_number(ratio) || json_number_value(ratio) <= 0)
			return aim_error("%s: model_args.mlp_ratio is not a positive number", what);
		c->mlp_hidden = (int)(c->dim * json_number_value(ratio));
	}
	if (c->depth < 1 || c->depth > AIM_MAX_BLOCKS)
		return aim_error("%s: model_args.depth %d out of range 1..%d", what, c->depth,
				 AIM_MAX_BLOCKS);
	last_layers(c, 1);
	return aim_config_check(c) < 0 ? aim_error_prefix("%s", what) : AIM_OK;
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
	json_t *mt = json_object_get(o, "model_type");
	if (json_is_string(mt) && (!strcmp(json_string_value(mt), "aimv2") ||
				   !strcmp(json_string_value(mt), "aimv2_vision_model"))) {
		int rc = from_hf_v2(c, o, what);
		if (rc == 0 && (rc = aim_config_check(c)) < 0)
			aim_error_prefix("%s", what);
		json_decref(o);
		return rc;
	}
	if (json_object_get(o, "architecture") && !json_object_get(o, "embed_dim")) {
		int rc = from_timm(c, o, what);
		json_decref(o);
		return rc;
	}
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
	json_t *qb = json_object_get(o, "qkv_bias");
	if (qb) {
		if (!json_is_boolean(qb)) {
			aim_error("%s: \"qkv_bias\" is not a boolean", what);
			goto out;
		}
		c->qkv_bias = json_is_true(qb);
	}
	static const struct {
		const char *key, *v0, *v1;
	} kinds[] = {{"norm", "layernorm", "rmsnorm"}, {"mlp", "gelu", "swiglu"},
		     {"pos_embed", "sincos", "learned"}};
	int *fields[] = {(int *)&c->norm, (int *)&c->mlp, (int *)&c->pos};
	for (int k = 0; k < 3; k++) {
		json_t *v = json_object_get(o, kinds[k].key);
		if (!v)
			continue;
		const char *sv = json_is_string(v) ? json_string_value(v) : "";
		if (strcmp(sv, kinds[k].v0) && strcmp(sv, kinds[k].v1)) {
			aim_error("%s: \"%s\" must be \"%s\" or \"%s\"", what, kinds[k].key,
				  kinds[k].v0, kinds[k].v1);
			goto out;
		}
		*fields[k] = strcmp(sv, kinds[k].v1) == 0;
	}
	json_t *eps = json_object_get(o, "norm_eps");
	if (eps) {
		if (!json_is_number(eps) || json_number_value(eps) <= 0 || json_number_value(eps) > 1) {
			aim_error("%s: \"norm_eps\" is not a number in (0, 1]", what);
			goto out;
		}
		c->norm_eps = (float)json_number_value(eps);
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
	/* The family keys only where they differ from AIM v1's, so AIM v1
	 * metadata reads as before. */
	if (c->qkv_bias)
		json_object_set_new(o, "qkv_bias", json_true());
	if (c->norm == AIM_NORM_RMS)
		json_object_set_new(o, "norm", json_string("rmsnorm"));
	if (c->mlp == AIM_MLP_SWIGLU)
		json_object_set_new(o, "mlp", json_string("swiglu"));
	if (c->pos == AIM_POS_LEARNED)
		json_object_set_new(o, "pos_embed", json_string("learned"));
	if (c->norm_eps > 0)
		json_object_set_new(o, "norm_eps", json_real(c->norm_eps));
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
