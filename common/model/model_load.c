/* Loading AIM v1 weights from safetensors, HF directories and PyTorch
 * checkpoints; converting them to one safetensors file (model_load.h). */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fileio.h"
#include "model_layouts.h"
#include "model_load.h"
#include "safetensors.h"
#include "weights_file.h"

/* The weights as read: a mapped safetensors file or a loaded checkpoint. */
typedef struct {
	aim_weights_file f;
	char *path;
	/* An AIMv2 checkpoint in the transformers or timm layout: its tensors
	 * under the ml-aim names (model_layouts.h), pointing into st or rec. */
	aim_layout layout;
	aim_record named;
} weights;

static aim_record *file_rec(weights *w) { return aim_wf_record(&w->f); }
static aim_record *weights_rec(weights *w)
{
	return w->layout != AIM_LAYOUT_MLAIM ? &w->named : file_rec(w);
}

static void weights_free(void *p)
{
	weights *w = p;
	if (!w)
		return;
	aim_record_free(&w->named);
	aim_wf_close(&w->f);
	free(w->path);
	free(w);
}

static int is_dir(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int file_exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s/%s", dir, name);
	return s;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, path, n);
		d[n] = 0;
	}
	return d;
}

/* Open weights by content (weights_file.h), whatever their name. */
static int weights_open(weights **out, const char *path)
{
	weights *w = calloc(1, sizeof *w);
	if (!w)
		return aim_error("out of memory");
	aim_record_init(&w->named);
	w->path = strdup(path);
	int rc = w->path ? aim_wf_open(&w->f, path) : aim_error("out of memory");
	if (rc == 0) {
		w->layout = aim_layout_detect(file_rec(w));
		if (w->layout != AIM_LAYOUT_MLAIM)
			rc = aim_layout_to_mlaim(file_rec(w), w->layout, &w->named, path);
	}
	if (rc < 0) {
		weights_free(w);
		return AIM_ERR;
	}
	*out = w;
	return AIM_OK;
}

static int same_arch(const aim_config *a, const aim_config *b, char *why, size_t n)
{
	const char *f = NULL;
	int va = 0, vb = 0;
#define CMP(field) if (!f && a->field != b->field) { f = #field; va = a->field; vb = b->field; }
	CMP(patch) CMP(channels) CMP(dim) CMP(depth) CMP(heads) CMP(mlp_hidden) CMP(norm) CMP(mlp)
#undef CMP
	if (f)
		snprintf(why, n, "%s %d vs %d", f, va, vb);
	return f == NULL;
}

/* The architecture, from the first of: aim.config metadata, config.json
 * beside the weights, --arch. Every source present must agree. */
static int resolve_config(aim_config *c, weights *w, const char *config_json_path,
			  const char *arch)
{
	aim_config found[3];
	const char *names[3];
	int n = 0;
	const char *meta = aim_record_get_meta(file_rec(w), "aim.config");
	if (meta) {
		if (aim_config_from_json(&found[n], meta, "aim.config metadata") < 0)
			return aim_error_prefix("%s", w->path);
		names[n++] = "its aim.config metadata";
	}
	if (config_json_path && file_exists(config_json_path)) {
		char *text;
		size_t len;
		if (aim_read_file(config_json_path, &text, &len) < 0)
			return AIM_ERR;
		int rc = aim_config_from_json(&found[n], text, config_json_path);
		free(text);
		if (rc < 0)
			return AIM_ERR;
		names[n++] = config_json_path;
	}
	if (arch) {
		if (aim_config_preset(&found[n], arch) < 0)
			return AIM_ERR;
		names[n++] = "--arch";
	}
	if (n == 0)
		return aim_error("%s: no architecture: no aim.config metadata, no config.json beside "
				 "it; give --arch (aim-600M, aim-1B, aim-3B, aim-7B)", w->path);
	for (int i = 1; i < n; i++) {
		char why[96];
		if (!same_arch(&found[0], &found[i], why, sizeof why))
			return aim_error("%s: architectures disagree: %s and %s (%s)", w->path, names[0],
					 names[i], why);
	}
	*c = found[0];
	return AIM_OK;
}

static int is_trunk_name(const char *name)
{
	return strncmp(name, "preprocessor.", 13) == 0 || strncmp(name, "trunk.", 6) == 0;
}

/* What a model file may carry besides the trunk: a probe head, and what an
 * aim-train checkpoint adds (its pixel head and AdamW moments: the
 * prefixes of train_head.h and train_ckpt.h, a layer above). */
static int is_known_part(const char *name)
{
	static const char *const parts[] = {"head.", "pixel_head.", "optim.m.", "optim.v."};
	if (!strcmp(name, "mask_token")) /* aim-train --objective masked */
		return 1;
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		if (!strncmp(name, parts[i], strlen(parts[i])))
			return 1;
	return 0;
}

/* Check every parameter by name and shape against the record (whose names
 * are the ml-aim ones; a missing tensor is named as the file's layout
 * names it). */
static int check_tensors(const aim_model *m, const aim_record *r, const char *path,
			 aim_layout layout)
{
	char a[96], b[96];
	for (int i = 0; i < m->nparams; i++) {
		const aim_param_info *p = &m->info[i];
		const aim_tensor *t = aim_record_find(r, p->name);
		if (!t) {
			char theirs[160];
			aim_layout_file_name(layout, p->name, theirs, sizeof theirs);
			return aim_error("%s: missing tensor %s (the %s %s architecture has dim %d, %d "
					 "blocks, %d heads)", path, theirs, aim_config_family(&m->cfg),
					 aim_layout_name(layout), m->cfg.dim, m->cfg.depth,
					 m->cfg.heads);
		}
		int ok = t->ndim == p->ndim;
		for (int d = 0; ok && d < p->ndim; d++)
			ok = t->shape[d] == p->shape[d];
		if (!ok)
			return aim_error("%s: tensor %s has shape %s, the architecture needs %s", path,
					 p->name, aim_shape_str(t->ndim, t->shape, a, sizeof a),
					 aim_shape_str(p->ndim, p->shape, b, sizeof b));
		if (t->dtype != AIM_F32 && t->dtype != AIM_F16 && t->dtype != AIM_BF16)
			return aim_error("%s: tensor %s has dtype %s (expected F32, F16 or BF16)", path,
					 p->name, aim_dtype_name(t->dtype));
	}
	for (int i = 0; i < r->n; i++)
		if (is_trunk_name(r->t[i].name) && !aim_model_param(m, r->t[i].name))
			return aim_error("%s: unexpected tensor %s (not part of the architecture: dim %d, "
					 "%d blocks, biases %s)", path, r->t[i].name, m->cfg.dim,
					 m->cfg.depth, m->cfg.proj_bias || m->cfg.mlp_bias ? "yes" : "no");
		else if (!is_trunk_name(r->t[i].name) && !is_known_part(r->t[i].name))
			return aim_error("%s: unexpected tensor %s (neither the trunk's, preprocessor.* "
					 "and trunk.*, nor a probe head's, head.*, nor an aim-train "
					 "checkpoint's, pixel_head.*, mask_token and optim.*)", path,
					 r->t[i].name);
	return AIM_OK;
}

/* Map every page of a tensor now (page faults at load time, in parallel),
 * not one by one in the middle of the first forward pass. */
static void prefault(const void *data, size_t n)
{
	const volatile unsigned char *p = data;
	long pages = (long)((n + 4095) / 4096);
	#pragma omp parallel for schedule(static) if (pages > 256)
	for (long i = 0; i < pages; i++)
		(void)p[(size_t)i * 4096];
}

/* Parameters: in place when every one is aligned F32 in host memory, else
 * converted into the arena. */
static int bind_params(aim_model *m, const aim_record *r)
{
	int in_place = m->be->host_memory;
	for (int i = 0; i < m->nparams && in_place; i++) {
		const aim_tensor *t = aim_record_find(r, m->info[i].name);
		in_place = t->dtype == AIM_F32 && ((uintptr_t)t->data & 3) == 0;
	}
	if (in_place) {
		for (int i = 0; i < m->nparams; i++) {
			const aim_tensor *t = aim_record_find(r, m->info[i].name);
			*m->info[i].slot = t->data;
			prefault(t->data, t->nbytes);
		}
		return AIM_OK;
	}
	if (aim_model_alloc_params(m) < 0)
		return AIM_ERR;
	float *tmp = NULL;
	for (int i = 0; i < m->nparams; i++) {
		const aim_param_info *p = &m->info[i];
		const aim_tensor *t = aim_record_find(r, p->name);
		if (m->be->host_memory) {
			aim_to_f32(*p->slot, t);
			continue;
		}
		float *nt = realloc(tmp, p->numel * sizeof(float));
		if (!nt) {
			free(tmp);
			return aim_error("out of memory");
		}
		tmp = nt;
		aim_to_f32(tmp, t);
		m->be->upload(*p->slot, tmp, p->numel * sizeof(float));
	}
	free(tmp);
	return AIM_OK;
}

/* Copy head.* tensors (floats as F32, others as they are) into m->head. */
static int take_head(aim_model *m, const aim_record *r, const char *path, int all_must_be_head)
{
	for (int i = 0; i < r->n; i++) {
		const aim_tensor *t = &r->t[i];
		if (strncmp(t->name, "head.", 5) != 0) {
			if (all_must_be_head && !is_trunk_name(t->name))
				return aim_error("%s: tensor %s is not a head tensor (head.*)", path, t->name);
			if (all_must_be_head)
				return aim_error("%s: the head file holds trunk tensor %s", path, t->name);
			continue;
		}
		if (aim_record_find(&m->head, t->name))
			return aim_error("%s: head tensor %s given twice (model and head files)", path,
					 t->name);
		int is_float = t->dtype == AIM_F32 || t->dtype == AIM_F16 || t->dtype == AIM_BF16;
		aim_tensor *nt = aim_record_add(&m->head, t->name, is_float ? AIM_F32 : t->dtype,
						t->ndim, t->shape, is_float ? NULL : t->data);
		if (!nt)
			return AIM_ERR;
		if (is_float)
			aim_to_f32(nt->data, t);
		m->has_head = 1;
	}
	const char *meta = aim_record_get_meta(r, "aim.head");
	if (meta && aim_record_set_meta(&m->head, "aim.head", meta) < 0)
		return AIM_ERR;
	return AIM_OK;
}

/* transformers' config.json says whether the model is a native one
 * (is_native: sin-cos positions, no table); the tensors must agree. */
static int check_native(const aim_config *c, const char *cfgpath, weights *w)
{
	if (w->layout != AIM_LAYOUT_TRANSFORMERS || !cfgpath || !file_exists(cfgpath))
		return AIM_OK;
	json_t *j = json_load_file(cfgpath, 0, NULL);
	json_t *v = json_object_get(j, "is_native");
	int native = json_is_boolean(v) ? json_is_true(v) : -1;
	json_decref(j);
	if (native < 0 || native == (c->pos == AIM_POS_SINCOS))
		return AIM_OK;
	return aim_error("%s: %s tensor embeddings.position_embedding.weight (%s says is_native: %s)",
			 w->path, native ? "unexpected" : "missing", cfgpath,
			 native ? "true" : "false");
}

int aim_model_load(aim_model **out, const char *path, const aim_load_opts *o)
{
	*out = NULL;
	const char *arch = o ? o->arch : NULL;
	const char *headp = o ? o->head : NULL;
	const aim_backend *be = aim_backend_select(o && o->device ? o->device : "cpu");
	if (!be)
		return AIM_ERR;
	char *wpath = NULL, *cfgpath = NULL;
	if (is_dir(path)) {
		cfgpath = join(path, "config.json");
		char *st = join(path, "model.safetensors"), *bin = join(path, "pytorch_model.bin");
		if (st && file_exists(st)) {
			wpath = st;
			free(bin);
		} else if (bin && file_exists(bin)) {
			wpath = bin;
			free(st);
		} else {
			free(st);
			free(bin);
			free(cfgpath);
			return aim_error("%s: directory has neither model.safetensors nor "
					 "pytorch_model.bin", path);
		}
		if (!file_exists(cfgpath) && !arch) {
			free(wpath);
			free(cfgpath);
			return aim_error("%s: directory has no config.json", path);
		}
	} else {
		wpath = strdup(path);
		char *d = dir_of(path);
		cfgpath = d ? join(d, "config.json") : NULL;
		free(d);
	}
	weights *w = NULL;
	aim_model *m = NULL;
	aim_config c;
	int rc = AIM_ERR;
	if (!wpath || weights_open(&w, wpath) < 0)
		goto out;
	if (resolve_config(&c, w, cfgpath, arch) < 0)
		goto out;
	/* Biases and the position table's kind: as the file has them. */
	aim_record *r = weights_rec(w);
	c.qkv_bias = aim_record_find(r, "trunk.blocks.0.attn.qkv.bias") != NULL;
	c.proj_bias = aim_record_find(r, "trunk.blocks.0.attn.proj.bias") != NULL;
	c.mlp_bias = aim_record_find(r, "trunk.blocks.0.mlp.fc1.bias") != NULL;
	c.pos = aim_record_find(r, "preprocessor.pos_embed") ? AIM_POS_LEARNED : AIM_POS_SINCOS;
	if (check_native(&c, cfgpath, w) < 0)
		goto out;
	if (aim_model_create(&m, &c, be) < 0) {
		aim_error_prefix("%s", wpath);
		goto out;
	}
	if (check_tensors(m, r, wpath, w->layout) < 0 || bind_params(m, r) < 0 || take_head(m, r, wpath, 0) < 0)
		goto out;
	if (headp) {
		weights *hw = NULL;
		if (weights_open(&hw, headp) < 0)
			goto out;
		int hrc = take_head(m, weights_rec(hw), headp, 1);
		weights_free(hw);
		if (hrc < 0)
			goto out;
		if (!m->has_head) {
			aim_error("%s: no head tensors", headp);
			goto out;
		}
	}
	m->source = strdup(wpath);
	if (m->arena) {
		weights_free(w); /* everything was copied */
	} else {
		m->mapping = w;
		m->mapping_free = weights_free;
	}
	w = NULL;
	*out = m;
	m = NULL;
	rc = AIM_OK;
out:
	weights_free(w);
	aim_model_free(m);
	free(wpath);
	free(cfgpath);
	return rc;
}

int aim_model_to_record(const aim_model *m, aim_record *r)
{
	if (!m->be->host_memory)
		return aim_error("writing a model needs its parameters in host memory");
	for (int i = 0; i < m->nparams; i++) {
		const aim_param_info *p = &m->info[i];
		if (!aim_record_add_ref(r, p->name, AIM_F32, p->ndim, p->shape, *p->slot))
			return AIM_ERR;
	}
	for (int i = 0; i < m->head.n; i++) {
		const aim_tensor *t = &m->head.t[i];
		if (!aim_record_add_ref(r, t->name, t->dtype, t->ndim, t->shape, t->data))
			return AIM_ERR;
	}
	const char *hm = aim_record_get_meta(&m->head, "aim.head");
	if (hm && aim_record_set_meta(r, "aim.head", hm) < 0)
		return AIM_ERR;
	char *json = aim_config_to_json(&m->cfg);
	if (!json)
		return aim_error("out of memory");
	int rc = aim_record_set_meta(r, "aim.config", json);
	free(json);
	return rc;
}

int aim_model_convert(const char *in, const char *head, const char *out, const char *arch,
		      aim_dtype dtype)
{
	if (dtype != AIM_F32 && dtype != AIM_F16 && dtype != AIM_BF16)
		return aim_error("convert: dtype must be F32, F16 or BF16");
	aim_load_opts o = {.arch = arch, .head = head, .device = "cpu"};
	aim_model *m;
	if (aim_model_load(&m, in, &o) < 0)
		return AIM_ERR;
	aim_record src, dst;
	aim_record_init(&src);
	aim_record_init(&dst);
	int rc = aim_model_to_record(m, &src);
	for (int i = 0; rc == 0 && i < src.n; i++) {
		const aim_tensor *t = &src.t[i];
		aim_dtype dt = t->dtype == AIM_F32 ? dtype : t->dtype;
		if (dt == t->dtype) {
			if (!aim_record_add_ref(&dst, t->name, dt, t->ndim, t->shape, t->data))
				rc = AIM_ERR;
			continue;
		}
		aim_tensor *nt = aim_record_add(&dst, t->name, dt, t->ndim, t->shape, NULL);
		if (!nt)
			rc = AIM_ERR;
		else
			aim_convert(nt->data, dt, t->data, t->dtype, (size_t)aim_tensor_numel(t));
	}
	for (int i = 0; rc == 0 && i < src.nmeta; i++)
		rc = aim_record_set_meta(&dst, src.meta[i].key, src.meta[i].value);
	if (rc == 0)
		rc = aim_st_write(out, &dst);
	aim_record_free(&dst);
	aim_record_free(&src);
	aim_model_free(m);
	return rc;
}
