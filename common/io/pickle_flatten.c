/* Second pass of the torch pickle reader: the object graph pickle.c built
 * becomes a flat list of named tensor descriptions. Crafted graphs share
 * subgraphs (a DAG) to make a walk exponential; every visit is counted
 * against a budget proportional to the graph. */
#include <stdlib.h>
#include <string.h>

#include "pickle_graph.h"

typedef struct {
	parser *ps;
	aim_pickle_tensors *out;
	int cap;
	char *name;
	size_t len, capname;
	size_t visits, max_visits; /* bounds the walk over shared (DAG) subgraphs */
} flattener;

static int valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		size_t k;
		uint32_t cp;
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i - 1 < k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* The current name, shortened for messages. */
static const char *shown_name(flattener *f)
{
	static _Thread_local char buf[200];
	size_t n = f->len < sizeof buf - 4 ? f->len : sizeof buf - 4;
	if (n) /* f->name is NULL until the first key is appended */
		memcpy(buf, f->name, n);
	strcpy(buf + n, n < f->len ? "..." : "");
	return buf;
}

static int name_append(flattener *f, const char *s, size_t n)
{
	size_t need = f->len + (f->len ? 1 : 0) + n + 1;
	if (need > MAX_NAME)
		return perr(f->ps, "a key path is longer than %u bytes", MAX_NAME);
	if (need > f->capname) {
		size_t cap = f->capname ? f->capname : 256;
		while (cap < need)
			cap *= 2;
		if (charge(f->ps, cap - f->capname))
			return AIM_ERR;
		char *b = realloc(f->name, cap);
		if (!b)
			return perr(f->ps, "out of memory");
		f->name = b;
		f->capname = cap;
	}
	if (f->len)
		f->name[f->len++] = '.';
	memcpy(f->name + f->len, s, n);
	f->len += n;
	f->name[f->len] = 0;
	return 0;
}

static int emit(flattener *f, const obj *t)
{
	parser *ps = f->ps;
	const obj *st = t->u.tensor->storage;
	const struct storage_class *sc = &storage_classes[st->u.storage.cls];
	const char *nm = shown_name(f);
	if (f->len == 0)
		return perr(ps, "a tensor has an empty name");
	if (!valid_utf8((const unsigned char *)f->name, f->len))
		return perr(ps, "tensor name '%s' is not valid UTF-8", nm);
	if (sc->dtype == AIM_DTYPE_INVALID)
		return perr(ps, "tensor '%s' has dtype %s (torch.%s); supported: F32, F16, BF16, I64, I32, U8",
			    nm, sc->torch_name, sc->name);
	if (t->u.tensor->ndim > AIM_MAX_DIMS)
		return perr(ps, "tensor '%s' has %d dimensions (at most %d)", nm, t->u.tensor->ndim,
			    AIM_MAX_DIMS);
	int64_t end;
	if (__builtin_add_overflow(t->u.tensor->offset, t->u.tensor->extent, &end) ||
	    end > st->u.storage.numel)
		return perr(ps, "tensor '%s' reaches element %lld + %lld of storage '%.*s', which has %lld",
			    nm, (long long)t->u.tensor->offset, (long long)t->u.tensor->extent,
			    (int)st->u.storage.key->u.str.len, st->u.storage.key->u.str.s,
			    (long long)st->u.storage.numel);
	if (f->out->n == f->cap) {
		int cap = f->cap ? 2 * f->cap : 64;
		if (charge(ps, (size_t)(cap - f->cap) * sizeof(aim_pickle_tensor)))
			return AIM_ERR;
		aim_pickle_tensor *a = realloc(f->out->t, (size_t)cap * sizeof *a);
		if (!a)
			return perr(ps, "out of memory");
		f->out->t = a;
		f->cap = cap;
	}
	if (charge(ps, f->len + 1 + st->u.storage.key->u.str.len + 1))
		return AIM_ERR;
	aim_pickle_tensor *o = &f->out->t[f->out->n];
	memset(o, 0, sizeof *o);
	o->name = strdup(f->name);
	o->storage_key = strndup(st->u.storage.key->u.str.s, st->u.storage.key->u.str.len);
	if (!o->name || !o->storage_key) {
		free(o->name);
		free(o->storage_key);
		return perr(ps, "out of memory");
	}
	f->out->n++;
	o->dtype = sc->dtype;
	o->storage_numel = st->u.storage.numel;
	o->offset = t->u.tensor->offset;
	o->extent = t->u.tensor->extent;
	o->ndim = t->u.tensor->ndim;
	memcpy(o->shape, t->u.tensor->shape, sizeof o->shape);
	memcpy(o->stride, t->u.tensor->stride, sizeof o->stride);
	return 0;
}

static int visit(flattener *f, int depth)
{
	if (++f->visits > f->max_visits || depth > MAX_DEPTH)
		return perr(f->ps, "object graph too deep or too large (cyclic?) under '%s'",
			    shown_name(f));
	return 0;
}

static int is_container(const obj *o)
{
	return o->kind == K_DICT || o->kind == K_LIST || o->kind == K_TUPLE;
}

static int walk(flattener *f, const obj *o, int depth)
{
	if (visit(f, depth))
		return AIM_ERR;
	if (o->kind == K_TENSOR)
		return emit(f, o);
	if (!is_container(o))
		return 0; /* numbers, strings, None: not tensors, ignored */
	size_t step = o->kind == K_DICT ? 2 : 1;
	for (size_t i = 0; i < o->u.seq.n; i += step) {
		size_t saved = f->len;
		char num[24];
		const obj *key = o->kind == K_DICT ? o->u.seq.v[i] : NULL;
		const obj *val = o->u.seq.v[i + step - 1];
		if (key && key->kind != K_STR && key->kind != K_INT)
			return perr(f->ps, "a dict key under '%s' is a %s; only str and int keys are accepted",
				    shown_name(f), kind_name(key->kind));
		if (val->kind != K_TENSOR && !is_container(val)) {
			/* a leaf that is no tensor: counted, but not named (naming
			 * each one was most of a crafted graph's cost) */
			if (visit(f, depth + 1))
				return AIM_ERR;
			continue;
		}
		int rc;
		if (!key) {
			snprintf(num, sizeof num, "%zu", i);
			rc = name_append(f, num, strlen(num));
		} else if (key->kind == K_STR) {
			rc = name_append(f, key->u.str.s, key->u.str.len);
		} else {
			snprintf(num, sizeof num, "%lld", (long long)key->u.i);
			rc = name_append(f, num, strlen(num));
		}
		if (rc || walk(f, val, depth + 1))
			return AIM_ERR;
		f->len = saved;
		if (f->name)
			f->name[f->len] = 0;
	}
	return 0;
}

/* 1 if a tensor is reachable from o, 0 if not, AIM_ERR past the limits. */
static int holds_tensor(flattener *f, const obj *o, int depth)
{
	if (visit(f, depth))
		return AIM_ERR;
	if (o->kind == K_TENSOR)
		return 1;
	if (!is_container(o))
		return 0;
	size_t step = o->kind == K_DICT ? 2 : 1;
	for (size_t i = step - 1; i < o->u.seq.n; i += step) {
		int rc = holds_tensor(f, o->u.seq.v[i], depth + 1);
		if (rc)
			return rc;
	}
	return 0;
}

/* Checkpoint wrappers: while the dict holds no tensor itself and exactly
 * one of its values (a dict) holds tensors, descend into that value. */
static int find_state_dict(flattener *f, const obj **root)
{
	const obj *d = *root;
	for (int level = 0; level < MAX_DEPTH; level++) {
		const obj *only = NULL;
		int holders = 0;
		for (size_t i = 1; i < d->u.seq.n; i += 2) {
			const obj *v = d->u.seq.v[i];
			if (v->kind == K_TENSOR)
				return 0;
			int rc = holds_tensor(f, v, 1);
			if (rc < 0)
				return rc;
			if (rc) {
				holders++;
				only = v;
			}
		}
		if (holders != 1 || only->kind != K_DICT)
			return 0;
		*root = d = only;
	}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp((*(aim_pickle_tensor *const *)a)->name, (*(aim_pickle_tensor *const *)b)->name);
}

static int check_unique(parser *ps, aim_pickle_tensors *ts)
{
	if (ts->n < 2)
		return 0;
	if (charge(ps, (size_t)ts->n * sizeof(aim_pickle_tensor *)))
		return AIM_ERR;
	aim_pickle_tensor **by_name = malloc((size_t)ts->n * sizeof *by_name);
	if (!by_name)
		return perr(ps, "out of memory");
	for (int i = 0; i < ts->n; i++)
		by_name[i] = &ts->t[i];
	qsort(by_name, (size_t)ts->n, sizeof *by_name, cmp_names);
	int rc = 0;
	for (int i = 1; i < ts->n && !rc; i++)
		if (!strcmp(by_name[i - 1]->name, by_name[i]->name))
			rc = perr(ps, "two tensors are named '%.200s'", by_name[i]->name);
	free(by_name);
	return rc;
}

void aim_pickle_tensors_free(aim_pickle_tensors *ts)
{
	for (int i = 0; i < ts->n; i++) {
		free(ts->t[i].name);
		free(ts->t[i].storage_key);
	}
	free(ts->t);
	ts->t = NULL;
	ts->n = 0;
}

int pickle_flatten(parser *ps, const obj *root, aim_pickle_tensors *out)
{
	flattener f = {.ps = ps, .out = out};
	/* A real state dict is a tree with shared leaves at most: a few visits
	 * per object. Anything far beyond is a crafted graph that would make
	 * the walk (and the names) grow exponentially. (The floor was 65,536:
	 * a 40-byte crafted graph then cost 65,536 visits, which made such
	 * inputs most of the fuzzer's time.) */
	f.max_visits = 4 * ps->nall + 4096;
	int rc = find_state_dict(&f, &root);
	if (!rc) {
		f.visits = 0;
		rc = walk(&f, root, 0);
	}
	if (!rc && out->n == 0)
		rc = perr(ps, "holds no tensors");
	if (!rc)
		rc = check_unique(ps, out);
	if (rc)
		aim_pickle_tensors_free(out);
	free(f.name);
	return rc;
}
