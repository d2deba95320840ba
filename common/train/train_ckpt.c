/* Pretraining checkpoints (train_ckpt.h). */
#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "safetensors.h"
#include "train_ckpt.h"

char *aim_train_state_json(const aim_train_state *s)
{
	char *out = NULL;
	/* %.17g keeps every double exact through the round trip. */
	if (asprintf(&out,
		     "{\"step\": %ld, \"samples\": %" PRIu64 ", \"seed\": \"%" PRIu64 "\", "
		     "\"rng\": \"counter (splitmix64 of seed, stream, sample index)\", "
		     "\"batch\": %d, \"accum\": %d, \"world\": %d, "
		     "\"lr\": %.17g, \"min_lr\": %.17g, \"warmup\": %ld, \"total_steps\": %ld, "
		     "\"weight_decay\": %.17g, \"clip\": %.17g, \"beta1\": %.17g, \"beta2\": %.17g, "
		     "\"eps\": %.17g, \"norm_pix\": %s, \"head_blocks\": %d, \"head_dim\": %d, "
		     "\"order\": \"%s\", \"attention\": \"%s\", \"objective\": \"%s\", "
		     "\"mask_ratio\": %.17g, \"head\": \"%s\"}",
		     s->step, s->samples, s->seed, s->batch, s->accum, s->world, s->lr, s->min_lr,
		     s->warmup, s->total, s->weight_decay, s->clip, s->beta1, s->beta2, s->eps,
		     s->norm_pix ? "true" : "false", s->head_blocks, s->head_dim,
		     aim_order_name(s->v.order), aim_attn_name(s->v.attention),
		     aim_objective_name(s->v.objective), s->v.mask_ratio,
		     aim_head_name(s->v.head)) < 0)
		return NULL;
	return out;
}

static int get_num(json_t *o, const char *key, double *v, const char *what)
{
	json_t *x = json_object_get(o, key);
	if (!json_is_number(x))
		return aim_error("%s: aim.train lacks a number \"%s\"", what, key);
	*v = json_number_value(x);
	return 0;
}

int aim_train_state_parse(aim_train_state *s, const char *text, const char *what)
{
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);
	if (!json_is_object(o)) {
		json_decref(o);
		return aim_error("%s: aim.train is not a JSON object", what);
	}
	memset(s, 0, sizeof *s);
	double v[15];
	static const char *keys[] = {"step", "samples", "batch", "accum", "world",
				     "lr", "min_lr", "warmup", "total_steps", "weight_decay",
				     "clip", "beta1", "beta2", "eps", "head_blocks"};
	for (int i = 0; i < 15; i++)
		if (get_num(o, keys[i], &v[i], what)) {
			json_decref(o);
			return AIM_ERR;
		}
	double hd = 0;
	json_t *seed = json_object_get(o, "seed"), *np = json_object_get(o, "norm_pix");
	if (get_num(o, "head_dim", &hd, what) || !json_is_string(seed) || !json_is_boolean(np)) {
		json_decref(o);
		return aim_error("%s: aim.train lacks head_dim, seed or norm_pix", what);
	}
	s->step = (long)v[0];
	s->samples = (uint64_t)json_integer_value(json_object_get(o, "samples"));
	s->batch = (int)v[2];
	s->accum = (int)v[3];
	s->world = (int)v[4];
	s->lr = v[5];
	s->min_lr = v[6];
	s->warmup = (long)v[7];
	s->total = (long)v[8];
	s->weight_decay = v[9];
	s->clip = v[10];
	s->beta1 = v[11];
	s->beta2 = v[12];
	s->eps = v[13];
	s->head_blocks = (int)v[14];
	s->head_dim = (int)hd;
	s->seed = strtoull(json_string_value(seed), NULL, 10);
	s->norm_pix = json_is_true(np);
	/* The variant: absent in checkpoints from before the options. */
	s->v = aim_variant_default();
	static const char *vkeys[] = {"order", "attention", "objective", "head"};
	int (*const parse[])(const char *) = {aim_order_parse, aim_attn_parse,
					      aim_objective_parse, aim_head_parse};
	int val[4] = {0, 0, 0, 0};
	for (int i = 0; i < 4; i++) {
		json_t *x = json_object_get(o, vkeys[i]);
		if (!x)
			continue;
		if (!json_is_string(x) || (val[i] = parse[i](json_string_value(x))) < 0) {
			json_decref(o);
			return aim_error("%s: aim.train has an unknown %s", what, vkeys[i]);
		}
	}
	s->v.order = (aim_order_kind)val[0];
	s->v.attention = (aim_attn_kind)val[1];
	s->v.objective = (aim_objective_kind)val[2];
	s->v.head = (aim_head_kind)val[3];
	json_t *mr = json_object_get(o, "mask_ratio");
	if (json_is_number(mr))
		s->v.mask_ratio = json_number_value(mr);
	json_decref(o);
	if (s->step < 0 || s->batch <= 0 || s->accum <= 0 || s->world <= 0 || s->head_dim <= 0 ||
	    s->head_blocks < 0 || !(s->v.mask_ratio > 0 && s->v.mask_ratio < 1))
		return aim_error("%s: aim.train has out-of-range values", what);
	return 0;
}

int aim_ckpt_order(const char *path, int rows, int cols, int *order)
{
	aim_train_state st;
	st.v = aim_variant_default();
	st.seed = 0;
	aim_stfile f;
	if (aim_st_open(&f, path) == 0) {
		const char *js = aim_record_get_meta(&f.rec, "aim.train");
		int rc = js ? aim_train_state_parse(&st, js, path) : 0;
		aim_st_close(&f);
		if (rc)
			return AIM_ERR;
	}
	aim_error_clear(); /* not a safetensors file: published weights, raster */
	return aim_patch_order(order, st.v.order, rows, cols, st.seed);
}

int aim_ckpt_model_order(const char *path, const aim_config *c, int **order)
{
	*order = malloc(sizeof(int) * (size_t)c->grid_rows * c->grid_cols);
	if (!*order)
		return aim_error("out of memory");
	return aim_ckpt_order(path, c->grid_rows, c->grid_cols, *order);
}

int aim_trunk_features_causal(aim_trunk_features *t, const char *path)
{
	int *order;
	if (aim_ckpt_model_order(path, &t->m->cfg, &order))
		return AIM_ERR;
	t->mask = AIM_MASK_CAUSAL;
	t->order = order;
	t->order_rows = t->m->cfg.grid_rows;
	t->order_cols = t->m->cfg.grid_cols;
	return 0;
}

int aim_ckpt_load_mask_token(float *token, int dim, const aim_record *r, const char *what)
{
	const aim_tensor *t = aim_record_find(r, "mask_token");
	if (!t)
		return aim_error("%s: tensor mask_token is missing (a masked-objective run)", what);
	if (t->ndim != 1 || t->shape[0] != dim)
		return aim_error("%s: tensor mask_token is not [%d]", what, dim);
	aim_to_f32(token, t);
	return 0;
}

int aim_ckpt_save(const char *rundir, const aim_model *m, aim_pixel_head *h,
		  const aim_optim *o, const aim_train_state *s, float *mask_token)
{
	aim_record r;
	aim_record_init(&r);
	char name[256], path[4096];
	int rc = AIM_ERR;
	for (int i = 0; i < m->nparams; i++) {
		const aim_param_info *p = &m->info[i];
		if (!aim_record_add_ref(&r, p->name, AIM_F32, p->ndim, p->shape, *p->slot))
			goto out;
	}
	if (aim_pixel_head_to_record(h, &r))
		goto out;
	if (mask_token &&
	    !aim_record_add_ref(&r, "mask_token", AIM_F32, 1, (int64_t[]){m->cfg.dim}, mask_token))
		goto out;
	for (int i = 0; i < o->n; i++) {
		const aim_trainable *t = &o->t[i];
		/* Moments keep their tensor's shape (copied: adding a tensor may
		 * move the record's table). */
		int ndim = 1;
		int64_t shape[AIM_MAX_DIMS] = {t->n};
		const aim_tensor *w = aim_record_find(&r, t->name);
		if (w) {
			ndim = w->ndim;
			memcpy(shape, w->shape, sizeof shape);
		}
		snprintf(name, sizeof name, AIM_OPTIM_M_PREFIX "%s", t->name);
		if (!aim_record_add_ref(&r, name, AIM_F32, ndim, shape, o->m + t->off))
			goto out;
		snprintf(name, sizeof name, AIM_OPTIM_V_PREFIX "%s", t->name);
		if (!aim_record_add_ref(&r, name, AIM_F32, ndim, shape, o->v + t->off))
			goto out;
	}
	char *cfg = aim_config_to_json(&m->cfg), *st = aim_train_state_json(s);
	char stepbuf[32];
	snprintf(stepbuf, sizeof stepbuf, "%ld", s->step);
	int mrc = !cfg || !st || aim_record_set_meta(&r, "aim.config", cfg) ||
		  aim_record_set_meta(&r, "aim.train", st) ||
		  aim_record_set_meta(&r, "aim.train.step", stepbuf);
	free(cfg);
	free(st);
	if (mrc) {
		aim_error("out of memory");
		goto out;
	}
	snprintf(path, sizeof path, "%s/step-%08ld.safetensors", rundir, s->step);
	rc = aim_st_write(path, &r);
out:
	aim_record_free(&r);
	return rc;
}

static int is_ckpt_name(const char *s, long *step)
{
	/* exactly "step-" 8 digits ".safetensors": temporary files never match */
	if (strncmp(s, "step-", 5) || strlen(s) != 5 + 8 + 12 || strcmp(s + 13, ".safetensors"))
		return 0;
	long v = 0;
	for (int i = 5; i < 13; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	*step = v;
	return 1;
}

int aim_ckpt_latest(const char *rundir, char *path, size_t n)
{
	DIR *d = opendir(rundir);
	if (!d)
		return aim_error("%s: cannot open directory: %m", rundir);
	long best = -1, step;
	struct dirent *e;
	while ((e = readdir(d)))
		if (is_ckpt_name(e->d_name, &step) && step > best)
			best = step;
	closedir(d);
	if (best < 0)
		return 0;
	snprintf(path, n, "%s/step-%08ld.safetensors", rundir, best);
	return 1;
}

void aim_ckpt_remove_partial(const char *rundir)
{
	DIR *d = opendir(rundir);
	if (!d)
		return;
	static const char *names[] = {".log.csv.tmp", ".loss.png.tmp", ".predictions.png.tmp"};
	struct dirent *e;
	char path[4096];
	while ((e = readdir(d))) {
		const char *n = e->d_name;
		int partial = !strncmp(n, ".step-", 6) && strstr(n, ".safetensors.tmp");
		for (size_t i = 0; i < sizeof names / sizeof *names; i++)
			partial |= !strncmp(n, names[i], strlen(names[i]));
		if (partial) {
			snprintf(path, sizeof path, "%s/%s", rundir, n);
			unlink(path);
		}
	}
	closedir(d);
}

static int copy_checked(float *dst, const aim_tensor *t, int ndim, const int64_t *shape,
			const char *name, const char *what)
{
	char a[64], b[64];
	int same = t->ndim == ndim;
	for (int d = 0; same && d < ndim; d++)
		same = t->shape[d] == shape[d];
	if (!same)
		return aim_error("%s: tensor %s has shape %s, expected %s", what, name,
				 aim_shape_str(t->ndim, t->shape, a, sizeof a),
				 aim_shape_str(ndim, shape, b, sizeof b));
	if (t->dtype != AIM_F32 && t->dtype != AIM_F16 && t->dtype != AIM_BF16)
		return aim_error("%s: tensor %s has dtype %s", what, name, aim_dtype_name(t->dtype));
	aim_to_f32(dst, t);
	return 0;
}

int aim_ckpt_load_trunk(aim_model *m, const aim_record *r, const char *what)
{
	for (int i = 0; i < m->nparams; i++) {
		const aim_param_info *p = &m->info[i];
		const aim_tensor *t = aim_record_find(r, p->name);
		if (!t)
			return aim_error("%s: tensor %s is missing", what, p->name);
		if (copy_checked(*p->slot, t, p->ndim, p->shape, p->name, what))
			return AIM_ERR;
	}
	return 0;
}

int aim_ckpt_load_moments(aim_optim *o, const aim_record *r, const char *what)
{
	char name[256];
	for (int i = 0; i < o->n; i++) {
		const aim_trainable *t = &o->t[i];
		float *dst[2] = {o->m + t->off, o->v + t->off};
		const char *pre[2] = {AIM_OPTIM_M_PREFIX, AIM_OPTIM_V_PREFIX};
		for (int k = 0; k < 2; k++) {
			snprintf(name, sizeof name, "%s%s", pre[k], t->name);
			const aim_tensor *x = aim_record_find(r, name);
			if (!x)
				return aim_error("%s: tensor %s is missing", what, name);
			if (aim_tensor_numel(x) != t->n || x->dtype != AIM_F32)
				return aim_error("%s: tensor %s has the wrong size or dtype", what, name);
			memcpy(dst[k], x->data, sizeof(float) * t->n);
		}
	}
	return 0;
}

int aim_ckpt_resume(const char *rundir, char *path, size_t n, aim_stfile *ck,
		    aim_train_state *st)
{
	int rc = aim_ckpt_latest(rundir, path, n);
	if (rc < 0)
		return AIM_ERR;
	if (rc == 0)
		return aim_error("%s: no checkpoint to resume from", rundir);
	if (aim_st_open(ck, path))
		return AIM_ERR;
	const char *js = aim_record_get_meta(&ck->rec, "aim.train");
	if (!js)
		return aim_error("%s: not a training checkpoint (no aim.train metadata)", path);
	return aim_train_state_parse(st, js, path) ? AIM_ERR : AIM_OK;
}
