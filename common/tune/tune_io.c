/* Adapter directories: writing and reading them (tune_io.h). */
#include "tune_io.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "err.h"
#include "fileio.h"
#include "safetensors.h"

#define CONFIG_NAME "adapter_config.json"
#define WEIGHTS_NAME "adapter_model.safetensors"

uint64_t aim_trunk_hash(const aim_model *m)
{
	/* FNV-1a over 64-bit words (two floats), then a final mix: fast enough
	 * for billions of weights, and any changed weight changes it. */
	uint64_t h = 0xcbf29ce484222325ull;
	float *host = NULL;
	size_t cap = 0;
	for (int i = 0; i < m->nparams; i++) {
		const aim_param_info *p = &m->info[i];
		const float *w = *p->slot;
		if (!w)
			continue;
		if (!m->be->host_memory) {
			if (p->numel > cap) {
				free(host);
				cap = p->numel;
				if (!(host = malloc(cap * sizeof(float))))
					return 0;
			}
			m->be->download(host, w, p->numel * sizeof(float));
			w = host;
		}
		const uint32_t *u = (const uint32_t *)w;
		for (size_t j = 0; j < p->numel; j++) {
			h ^= u[j];
			h *= 0x100000001b3ull;
		}
	}
	free(host);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* ---- writing ------------------------------------------------------------ */

static json_t *tune_json(const aim_tune *t)
{
	const aim_tune_config *c = &t->cfg;
	json_t *j = json_object();
	json_object_set_new(j, "kind", json_string(aim_tune_kind_name(c->kind)));
	if (c->kind == AIM_TUNE_LORA) {
		json_object_set_new(j, "r", json_integer(c->rank));
		json_object_set_new(j, "lora_alpha", json_real(c->alpha));
	} else if (c->kind == AIM_TUNE_ADAPTER) {
		json_object_set_new(j, "adapter_dim", json_integer(c->adapter_dim));
	} else if (c->kind == AIM_TUNE_PROMPT) {
		json_object_set_new(j, "prompts", json_integer(c->prompts));
		json_object_set_new(j, "deep", json_boolean(c->deep));
	}
	json_object_set_new(j, "depth", json_integer(t->depth));
	json_object_set_new(j, "dim", json_integer(t->dim));
	return j;
}

/* peft's LoraConfig with every key a reader may look at; the ones aim does
 * not use at their neutral values. */
static json_t *peft_config(const aim_tune *t, const char *base)
{
	const aim_tune_config *c = &t->cfg;
	json_t *targets = json_array();
	unsigned used = 0;
	for (int l = 0; l < t->depth; l++)
		used |= aim_lora_mask(c, l);
	for (int k = 0; k < AIM_LORA_NT; k++)
		if (used & (1u << k)) /* "attn.proj", not "proj": peft would match the patch conv too */
			json_array_append_new(targets, json_string(aim_lora_target_path(k)));
	json_t *j = json_object();
	json_object_set_new(j, "peft_type", json_string("LORA"));
	json_object_set_new(j, "task_type", json_null());
	json_object_set_new(j, "base_model_name_or_path", base ? json_string(base) : json_null());
	json_object_set_new(j, "revision", json_null());
	json_object_set_new(j, "inference_mode", json_true());
	json_object_set_new(j, "r", json_integer(c->rank));
	if (c->alpha == floor(c->alpha))
		json_object_set_new(j, "lora_alpha", json_integer((json_int_t)c->alpha));
	else
		json_object_set_new(j, "lora_alpha", json_real(c->alpha));
	json_object_set_new(j, "target_modules", targets);
	json_object_set_new(j, "lora_dropout", json_real(0.0));
	json_object_set_new(j, "bias", json_string("none"));
	json_object_set_new(j, "fan_in_fan_out", json_false());
	json_object_set_new(j, "use_rslora", json_boolean(c->rslora));
	json_object_set_new(j, "use_dora", json_false());
	json_object_set_new(j, "init_lora_weights", json_true());
	json_object_set_new(j, "modules_to_save", json_null());
	json_object_set_new(j, "layers_to_transform", json_null());
	json_object_set_new(j, "layers_pattern", json_null());
	json_object_set_new(j, "rank_pattern", json_object());
	json_object_set_new(j, "alpha_pattern", json_object());
	json_object_set_new(j, "megatron_config", json_null());
	json_object_set_new(j, "megatron_core", json_string("megatron.core"));
	json_object_set_new(j, "loftq_config", json_object());
	json_object_set_new(j, "layer_replication", json_null());
	return j;
}

int aim_tune_save(const aim_tune *t, const char *dir, const char *base_model,
		  uint64_t trunk_hash)
{
	const aim_tune_config *c = &t->cfg;
	if (c->kind == AIM_TUNE_NONE || c->kind == AIM_TUNE_FULL)
		return aim_error("%s: full fine-tuning has no adapter to write (the trunk is the model)",
				 dir);
	if (mkdir(dir, 0777) && errno != EEXIST)
		return aim_error("%s: %s", dir, strerror(errno));
	json_t *cj;
	if (c->kind == AIM_TUNE_LORA) {
		cj = peft_config(t, base_model);
	} else {
		cj = json_object();
		json_object_set_new(cj, "peft_type", json_string(c->kind == AIM_TUNE_ADAPTER
								  ? "AIM_ADAPTER" : "AIM_PROMPT"));
		json_object_set_new(cj, "base_model_name_or_path",
				    base_model ? json_string(base_model) : json_null());
		if (c->kind == AIM_TUNE_ADAPTER)
			json_object_set_new(cj, "adapter_dim", json_integer(c->adapter_dim));
		else {
			json_object_set_new(cj, "num_virtual_tokens", json_integer(c->prompts));
			json_object_set_new(cj, "deep", json_boolean(c->deep));
		}
	}
	char *ctext = json_dumps(cj, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
	json_decref(cj);
	json_t *tj = tune_json(t);
	char *ttext = json_dumps(tj, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
	json_decref(tj);
	char *cpath = join(dir, CONFIG_NAME), *wpath = join(dir, WEIGHTS_NAME);
	float *host = NULL;
	int rc = AIM_ERR;
	aim_record r;
	aim_record_init(&r);
	if (!ctext || !ttext || !cpath || !wpath) {
		aim_error("out of memory");
		goto out;
	}
	host = t->be->host_memory ? t->arena : malloc(t->arena_floats * sizeof(float));
	if (!host) {
		aim_error("out of memory");
		goto out;
	}
	if (!t->be->host_memory)
		t->be->download(host, t->arena, t->arena_floats * sizeof(float));
	for (int i = 0; i < t->nparams; i++) {
		const aim_param_info *p = &t->info[i];
		if (!aim_record_add_ref(&r, p->name, AIM_F32, p->ndim, p->shape, host + p->offset)) {
			aim_error("out of memory");
			goto out;
		}
	}
	char hash[32];
	snprintf(hash, sizeof hash, "%016llx", (unsigned long long)trunk_hash);
	if (aim_record_set_meta(&r, "format", "pt") || aim_record_set_meta(&r, "aim.tune", ttext) ||
	    aim_record_set_meta(&r, "aim.trunk_hash", hash) ||
	    (base_model && aim_record_set_meta(&r, "aim.model", base_model))) {
		aim_error("out of memory");
		goto out;
	}
	if (aim_st_write(wpath, &r) < 0)
		goto out;
	size_t cl = strlen(ctext);
	char *cfile = malloc(cl + 1);
	if (!cfile) {
		aim_error("out of memory");
		goto out;
	}
	memcpy(cfile, ctext, cl);
	cfile[cl] = '\n';
	rc = aim_write_file_atomic(cpath, cfile, cl + 1);
	free(cfile);
out:
	aim_record_free(&r);
	if (host && host != t->arena)
		free(host);
	free(ctext), free(ttext), free(cpath), free(wpath);
	return rc;
}

/* ---- reading ------------------------------------------------------------ */

/* peft's check_target_module_exists for one module key: a list names keys
 * exactly or by a suffix after a dot; a string is a regular expression the
 * whole key must match. */
static int peft_targets(const json_t *tm, const char *key, const char *what)
{
	if (json_is_string(tm)) {
		const char *pat = json_string_value(tm);
		size_t n = strlen(pat) + 8;
		char *full = malloc(n);
		if (!full)
			return aim_error("out of memory");
		snprintf(full, n, "^(%s)$", pat);
		regex_t re;
		if (regcomp(&re, full, REG_EXTENDED | REG_NOSUB)) {
			free(full);
			return aim_error("%s: target_modules '%s' is not a regular expression", what, pat);
		}
		int hit = regexec(&re, key, 0, NULL, 0) == 0;
		regfree(&re);
		free(full);
		return hit;
	}
	size_t kl = strlen(key);
	size_t i;
	json_t *v;
	json_array_foreach(tm, i, v) {
		const char *t = json_string_value(v);
		if (!t)
			return aim_error("%s: target_modules holds a value that is not a string", what);
		size_t tl = strlen(t);
		if (!strcmp(t, key) || (kl > tl && key[kl - tl - 1] == '.' && !strcmp(key + kl - tl, t)))
			return 1;
	}
	return 0;
}

/* "trunk.blocks.<i>.<path>" into block and target; -1 if it is none. */
static int parse_module(const char *mod, int *block, int *target)
{
	int l, n = 0;
	if (sscanf(mod, "trunk.blocks.%d.%n", &l, &n) != 1 || n == 0 || l < 0)
		return -1;
	for (int k = 0; k < AIM_LORA_NT; k++)
		if (!strcmp(mod + n, aim_lora_target_path(k))) {
			*block = l;
			*target = k;
			return 0;
		}
	return -1;
}

static int is_float(const aim_tensor *t)
{
	return t->dtype == AIM_F32 || t->dtype == AIM_F16 || t->dtype == AIM_BF16;
}

/* Copy tensor src (checked against the table entry p) into the tune. */
static int take(aim_tune *t, const aim_param_info *p, const aim_tensor *src, const char *path,
		float *host)
{
	int ok = is_float(src) && src->ndim == p->ndim;
	for (int d = 0; ok && d < p->ndim; d++)
		ok = src->shape[d] == p->shape[d];
	if (!ok) {
		char want[64] = "", got[64] = "";
		for (int d = 0; d < p->ndim; d++)
			snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
				 (long long)p->shape[d]);
		for (int d = 0; d < src->ndim; d++)
			snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
				 (long long)src->shape[d]);
		return aim_error("%s: tensor %s is %s [%s]; this model needs F32 [%s]", path, p->name,
				 aim_dtype_name(src->dtype), got, want);
	}
	aim_convert(host + p->offset, AIM_F32, src->data, src->dtype, p->numel);
	(void)t;
	return AIM_OK;
}

static int get_int(const json_t *cfg, const char *key, int *v, const char *path)
{
	json_t *x = json_object_get(cfg, key);
	if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 1 << 20)
		return aim_error("%s: \"%s\" must be a positive integer", path, key);
	*v = (int)json_integer_value(x);
	return AIM_OK;
}

/* peft options aim cannot honour are errors, not silently different
 * numbers. */
static int lora_options(const json_t *cfg, aim_tune_config *c, const char *path)
{
	if (get_int(cfg, "r", &c->rank, path) < 0)
		return AIM_ERR;
	json_t *a = json_object_get(cfg, "lora_alpha");
	if (a && !json_is_number(a))
		return aim_error("%s: \"lora_alpha\" must be a number", path);
	c->alpha = a ? json_number_value(a) : 8; /* peft's default */
	json_t *b = json_object_get(cfg, "bias");
	if (b && !json_is_null(b) && (!json_is_string(b) || strcmp(json_string_value(b), "none")))
		return aim_error("%s: bias \"%s\": only \"none\" is supported (LoRA without bias terms)",
				 path, json_is_string(b) ? json_string_value(b) : "?");
	static const char *const must_false[] = {"use_dora", "fan_in_fan_out"};
	for (size_t i = 0; i < 2; i++)
		if (json_is_true(json_object_get(cfg, must_false[i])))
			return aim_error("%s: \"%s\": true is not supported", path, must_false[i]);
	static const char *const must_empty[] = {"rank_pattern", "alpha_pattern"};
	for (size_t i = 0; i < 2; i++) {
		json_t *x = json_object_get(cfg, must_empty[i]);
		if (x && !json_is_null(x) && (!json_is_object(x) || json_object_size(x)))
			return aim_error("%s: \"%s\": per-module ranks or alphas are not supported", path,
					 must_empty[i]);
	}
	json_t *ms = json_object_get(cfg, "modules_to_save");
	if (ms && !json_is_null(ms) && (!json_is_array(ms) || json_array_size(ms)))
		return aim_error("%s: \"modules_to_save\" is not supported", path);
	c->rslora = json_is_true(json_object_get(cfg, "use_rslora"));
	return AIM_OK;
}

/* layers_to_transform: null, one index or a list; 1 if block l is in it. */
static int layer_wanted(const json_t *ltt, int l)
{
	if (!ltt || json_is_null(ltt))
		return 1;
	if (json_is_integer(ltt))
		return json_integer_value(ltt) == l;
	size_t i;
	json_t *v;
	json_array_foreach(ltt, i, v)
		if (json_is_integer(v) && json_integer_value(v) == l)
			return 1;
	return 0;
}

static int read_lora(aim_tune_config *c, const json_t *cfg, const aim_record *r,
		     const aim_model *m, const char *wpath, const char *cpath)
{
	if (lora_options(cfg, c, cpath) < 0)
		return AIM_ERR;
	const json_t *tm = json_object_get(cfg, "target_modules");
	if (!json_is_array(tm) && !json_is_string(tm))
		return aim_error("%s: \"target_modules\" must be a list of names or a regular expression",
				 cpath);
	const json_t *ltt = json_object_get(cfg, "layers_to_transform");
	static const char pre[] = "base_model.model.";
	unsigned char seen[AIM_MAX_BLOCKS][AIM_LORA_NT] = {{0}};
	for (int i = 0; i < r->n; i++) {
		const char *name = r->t[i].name;
		size_t n = strlen(name);
		const size_t sl = sizeof ".lora_A.weight" - 1;
		int isA = n > sl && !strcmp(name + n - sl, ".lora_A.weight");
		int isB = n > sl && !strcmp(name + n - sl, ".lora_B.weight");
		if (strncmp(name, pre, sizeof pre - 1) || !(isA || isB))
			return aim_error("%s: tensor %s is not a LoRA weight "
					 "(base_model.model.<module>.lora_A.weight or .lora_B.weight)",
					 wpath, name);
		char mod[128];
		size_t ml = n - sl - (sizeof pre - 1);
		if (ml >= sizeof mod)
			return aim_error("%s: tensor %s: module name too long", wpath, name);
		memcpy(mod, name + sizeof pre - 1, ml);
		mod[ml] = 0;
		int l, k;
		if (parse_module(mod, &l, &k) < 0)
			return aim_error("%s: tensor %s: %s is not a layer aim adapts "
					 "(trunk.blocks.<i>.attn.qkv, .attn.proj, .mlp.fc1, .mlp.fc2, "
					 ".mlp.fc3)", wpath, name, mod);
		if (l >= m->cfg.depth)
			return aim_error("%s: tensor %s: block %d, but the model has %d blocks", wpath, name,
					 l, m->cfg.depth);
		if (k == AIM_LORA_FC3 && m->cfg.mlp != AIM_MLP_SWIGLU)
			return aim_error("%s: tensor %s: this %s model's MLP has no fc3 (only AIMv2's "
					 "SwiGLU MLP has one)", wpath, name, aim_config_family(&m->cfg));
		int hit = peft_targets(tm, mod, cpath);
		if (hit < 0)
			return AIM_ERR;
		if (!hit || !layer_wanted(ltt, l))
			return aim_error("%s: tensor %s: module %s is not named by target_modules "
					 "(or layers_to_transform) of %s", wpath, name, mod, cpath);
		seen[l][k] |= isA ? 1 : 2;
		c->block_mask[l] |= (unsigned char)(1u << k);
	}
	int any = 0;
	for (int l = 0; l < m->cfg.depth; l++) {
		for (int k = 0; k < AIM_LORA_NT; k++)
			if (seen[l][k] && seen[l][k] != 3)
				return aim_error("%s: base_model.model.trunk.blocks.%d.%s.%s.weight is missing",
						 wpath, l, aim_lora_target_path(k),
						 seen[l][k] == 1 ? "lora_B" : "lora_A");
		c->block_off[l] = !c->block_mask[l];
		any |= c->block_mask[l];
	}
	if (!any)
		return aim_error("%s: no LoRA tensors", wpath);
	c->targets = 0;
	return AIM_OK;
}

int aim_tune_load(aim_tune **out, const char *dir, const aim_model *m, char *warning, size_t wn)
{
	*out = NULL;
	if (warning && wn)
		warning[0] = 0;
	char *cpath = join(dir, CONFIG_NAME), *wpath = join(dir, WEIGHTS_NAME);
	char *text = NULL;
	size_t len;
	json_t *cfg = NULL;
	aim_stfile f;
	int have_f = 0, rc = AIM_ERR;
	aim_tune *t = NULL;
	float *host = NULL;
	if (!cpath || !wpath) {
		aim_error("out of memory");
		goto out;
	}
	struct stat st;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		aim_error("%s: not an adapter directory (%s)", dir,
			  stat(dir, &st) ? strerror(errno) : "not a directory");
		goto out;
	}
	if (aim_read_file(cpath, &text, &len) < 0)
		goto out;
	json_error_t je;
	cfg = json_loadb(text, len, 0, &je);
	if (!json_is_object(cfg)) {
		aim_error("%s: not a JSON object (%s, line %d)", cpath, je.text, je.line);
		goto out;
	}
	if (aim_st_open(&f, wpath) < 0)
		goto out;
	have_f = 1;
	const char *type = json_string_value(json_object_get(cfg, "peft_type"));
	aim_tune_config c;
	memset(&c, 0, sizeof c);
	if (!type) {
		aim_error("%s: no \"peft_type\"", cpath);
		goto out;
	} else if (!strcmp(type, "LORA")) {
		c.kind = AIM_TUNE_LORA;
		if (read_lora(&c, cfg, &f.rec, m, wpath, cpath) < 0)
			goto out;
	} else if (!strcmp(type, "AIM_ADAPTER")) {
		c.kind = AIM_TUNE_ADAPTER;
		if (get_int(cfg, "adapter_dim", &c.adapter_dim, cpath) < 0)
			goto out;
	} else if (!strcmp(type, "AIM_PROMPT")) {
		c.kind = AIM_TUNE_PROMPT;
		if (get_int(cfg, "num_virtual_tokens", &c.prompts, cpath) < 0)
			goto out;
		c.deep = json_is_true(json_object_get(cfg, "deep"));
	} else {
		aim_error("%s: peft_type \"%s\": aim reads LORA, AIM_ADAPTER and AIM_PROMPT adapters",
			  cpath, type);
		goto out;
	}
	const aim_config *mc = &m->cfg;
	if (aim_tune_create(&t, &c, mc->depth, mc->dim, mc->mlp_hidden,
			    mc->channels * mc->patch * mc->patch, m->be, 0) < 0) {
		aim_error_prefix("%s", cpath);
		goto out;
	}
	host = t->be->host_memory ? t->arena : calloc(t->arena_floats, sizeof(float));
	if (!host) {
		aim_error("out of memory");
		goto out;
	}
	/* every tensor the table wants, in the file; nothing else there */
	for (int i = 0; i < t->nparams; i++) {
		const aim_tensor *src = aim_record_find(&f.rec, t->info[i].name);
		if (!src) {
			aim_error("%s: tensor %s is missing (a %s adapter for %d blocks of width %d)", wpath,
				  t->info[i].name, type, mc->depth, mc->dim);
			goto out;
		}
		if (take(t, &t->info[i], src, wpath, host) < 0)
			goto out;
	}
	for (int i = 0; i < f.rec.n; i++)
		if (!aim_tune_param(t, f.rec.t[i].name)) {
			aim_error("%s: tensor %s does not belong to a %s adapter of this model", wpath,
				  f.rec.t[i].name, type);
			goto out;
		}
	if (!t->be->host_memory)
		t->be->upload(t->arena, host, t->arena_floats * sizeof(float));
	const char *hash = aim_record_get_meta(&f.rec, "aim.trunk_hash");
	if (hash && warning && wn) {
		char mine[32];
		snprintf(mine, sizeof mine, "%016llx", (unsigned long long)aim_trunk_hash(m));
		if (strcmp(hash, mine)) {
			const char *base = aim_record_get_meta(&f.rec, "aim.model");
			snprintf(warning, wn, "%s: made for other trunk weights (%s, hash %s; this model's "
				 "hash is %s)", dir, base ? base : "base model not recorded", hash, mine);
		}
	}
	*out = t;
	t = NULL;
	rc = AIM_OK;
out:
	if (host && (!t || host != t->arena) && (!*out || host != (*out)->arena))
		free(host);
	aim_tune_free(t);
	if (have_f)
		aim_st_close(&f);
	json_decref(cfg);
	free(text), free(cpath), free(wpath);
	return rc;
}

/* ---- applying ----------------------------------------------------------- */

int aim_lora_merge(aim_model *m, const aim_tune *t)
{
	if (t->cfg.kind != AIM_TUNE_LORA)
		return aim_error("only LoRA adapters merge into the weights");
	if (aim_model_alloc_params(m) < 0) /* out of a read-only mapping, into our arena */
		return AIM_ERR;
	const aim_backend *be = m->be;
	float s = (float)aim_lora_scale(t);
	int r = t->cfg.rank;
	size_t maxw = 0;
	for (int k = 0; k < AIM_LORA_NT; k++) {
		int in, out;
		aim_lora_dims(t, k, &in, &out);
		if ((size_t)in * out > maxw)
			maxw = (size_t)in * out;
	}
	size_t maxab = (size_t)r * (m->cfg.mlp_hidden > 3 * m->cfg.dim ? m->cfg.mlp_hidden : 3 * m->cfg.dim);
	float *w = malloc(maxw * sizeof(float)), *A = malloc(maxab * sizeof(float));
	float *B = malloc(maxab * sizeof(float));
	if (!w || !A || !B) {
		free(w), free(A), free(B);
		return aim_error("out of memory for merging");
	}
	for (int l = 0; l < t->depth; l++) {
		aim_block_params *bp = &m->p.blocks[l];
		float *targets[AIM_LORA_NT] = {bp->qkv_w, bp->proj_w, bp->fc1_w, bp->fc2_w,
					       bp->fc3_w};
		for (int k = 0; k < AIM_LORA_NT; k++) {
			const aim_lora_pair *p = &t->lora[l][k];
			if (!(aim_lora_mask(&t->cfg, l) & (1u << k)))
				continue;
			if (!targets[k]) {
				free(w), free(A), free(B);
				return aim_error("trunk.blocks.%d.%s: this %s model has no such layer", l,
						 aim_lora_target_path(k), aim_config_family(&m->cfg));
			}
			int in, out;
			aim_lora_dims(t, k, &in, &out);
			size_t nw = (size_t)in * out;
			be->download(w, targets[k], nw * sizeof(float));
			be->download(A, p->a, (size_t)r * in * sizeof(float));
			be->download(B, p->b, (size_t)out * r * sizeof(float));
			/* W[o, i] += s · Σ_j B[o, j] A[j, i], summed in double */
			#pragma omp parallel for schedule(static)
			for (int o = 0; o < out; o++) {
				for (int i = 0; i < in; i++) {
					double acc = 0;
					for (int j = 0; j < r; j++)
						acc += (double)B[(size_t)o * r + j] * A[(size_t)j * in + i];
					w[(size_t)o * in + i] += (float)(s * acc);
				}
			}
			be->upload(targets[k], w, nw * sizeof(float));
		}
	}
	free(w), free(A), free(B);
	return AIM_OK;
}

int aim_tune_apply(aim_model *m, const char *dir, aim_tune_kind *kind, char *warning,
		   size_t wn)
{
	aim_tune *t;
	if (aim_tune_load(&t, dir, m, warning, wn) < 0)
		return AIM_ERR;
	if (kind)
		*kind = t->cfg.kind;
	if (t->cfg.kind == AIM_TUNE_LORA) {
		int rc = aim_lora_merge(m, t);
		aim_tune_free(t);
		return rc;
	}
	if (aim_model_set_tune(m, t, 1) < 0) {
		aim_tune_free(t);
		return AIM_ERR;
	}
	return AIM_OK;
}
