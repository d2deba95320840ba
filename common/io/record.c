/* Records = safetensors blobs: validation, construction, serialisation. */
#include "record.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void aim_record_init(aim_record *r) { memset(r, 0, sizeof *r); }

void aim_record_clear(aim_record *r)
{
	for (int i = 0; i < r->n; i++) {
		free(r->t[i].name);
		if (r->owned_data && r->owned_data[i])
			free(r->t[i].data);
	}
	r->n = 0;
	for (int i = 0; i < r->nmeta; i++) {
		free(r->meta[i].key);
		free(r->meta[i].value);
	}
	r->nmeta = 0;
	free(r->buf);
	r->buf = NULL;
	r->buflen = 0;
}

void aim_record_free(aim_record *r)
{
	aim_record_clear(r);
	free(r->t);
	free(r->owned_data);
	free(r->meta);
	aim_record_init(r);
}

static int grow_tensors(aim_record *r)
{
	if (r->n < r->cap)
		return 0;
	int cap = r->cap ? r->cap * 2 : 8;
	aim_tensor *t = realloc(r->t, (size_t)cap * sizeof *t);
	if (!t)
		return aim_error("out of memory");
	r->t = t;
	unsigned char *o = realloc(r->owned_data, (size_t)cap);
	if (!o)
		return aim_error("out of memory");
	r->owned_data = o;
	r->cap = cap;
	return 0;
}

static aim_tensor *add_entry(aim_record *r, const char *name, aim_dtype dt, int ndim,
			     const int64_t *shape, int check_name)
{
	if (ndim < 0 || ndim > AIM_MAX_DIMS) {
		aim_error("tensor '%s': %d dimensions (at most %d)", name, ndim, AIM_MAX_DIMS);
		return NULL;
	}
	int64_t numel = aim_shape_numel(ndim, shape);
	if (numel < 0 || (uint64_t)numel > SIZE_MAX / 8) {
		aim_error("tensor '%s': invalid shape", name);
		return NULL;
	}
	if (check_name && aim_record_find(r, name)) {
		aim_error("tensor '%s' appears twice", name);
		return NULL;
	}
	if (grow_tensors(r))
		return NULL;
	aim_tensor *t = &r->t[r->n];
	memset(t, 0, sizeof *t);
	t->name = strdup(name);
	if (!t->name) {
		aim_error("out of memory");
		return NULL;
	}
	t->dtype = dt;
	t->ndim = ndim;
	if (ndim)
		memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
	t->nbytes = (size_t)numel * aim_dtype_size(dt);
	r->owned_data[r->n] = 0;
	r->n++;
	return t;
}

static aim_tensor *add_owned(aim_record *r, const char *name, aim_dtype dt, int ndim,
			     const int64_t *shape, const void *data, int check_name)
{
	aim_tensor *t = add_entry(r, name, dt, ndim, shape, check_name);
	if (!t)
		return NULL;
	t->data = data ? malloc(t->nbytes ? t->nbytes : 1) : calloc(1, t->nbytes ? t->nbytes : 1);
	if (!t->data) {
		free(t->name);
		r->n--;
		aim_error("out of memory for tensor '%s'", name);
		return NULL;
	}
	if (data)
		memcpy(t->data, data, t->nbytes);
	r->owned_data[r->n - 1] = 1;
	return t;
}

aim_tensor *aim_record_add(aim_record *r, const char *name, aim_dtype dt, int ndim,
			   const int64_t *shape, const void *data)
{
	return add_owned(r, name, dt, ndim, shape, data, 1);
}

aim_tensor *aim_record_add_new(aim_record *r, const char *name, aim_dtype dt, int ndim,
			       const int64_t *shape)
{
	return add_owned(r, name, dt, ndim, shape, NULL, 0);
}

aim_tensor *aim_record_add_ref(aim_record *r, const char *name, aim_dtype dt, int ndim,
			       const int64_t *shape, void *data)
{
	aim_tensor *t = add_entry(r, name, dt, ndim, shape, 1);
	if (t)
		t->data = data;
	return t;
}

aim_tensor *aim_record_find(const aim_record *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->t[i].name, name))
			return &r->t[i];
	return NULL;
}

void aim_record_truncate(aim_record *r, int n)
{
	while (r->n > n && r->n > 0) {
		r->n--;
		free(r->t[r->n].name);
		if (r->owned_data[r->n])
			free(r->t[r->n].data);
	}
}

int aim_record_remove(aim_record *r, const char *name)
{
	for (int i = 0; i < r->n; i++) {
		if (strcmp(r->t[i].name, name))
			continue;
		free(r->t[i].name);
		if (r->owned_data[i])
			free(r->t[i].data);
		memmove(&r->t[i], &r->t[i + 1], (size_t)(r->n - i - 1) * sizeof *r->t);
		memmove(&r->owned_data[i], &r->owned_data[i + 1], (size_t)(r->n - i - 1));
		r->n--;
		return 0;
	}
	return aim_error("no tensor '%s'", name);
}

char *aim_meta_floats(const double *v, int n)
{
	char *s = malloc(32 * n + 3), *p = s;
	if (!s)
		return NULL;
	*p++ = '[';
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%s%.9g", i ? "," : "", v[i]);
	strcpy(p, "]");
	return s;
}

int aim_record_set_meta(aim_record *r, const char *key, const char *value)
{
	for (int i = 0; i < r->nmeta; i++) {
		if (!strcmp(r->meta[i].key, key)) {
			char *v = strdup(value);
			if (!v)
				return aim_error("out of memory");
			free(r->meta[i].value);
			r->meta[i].value = v;
			return 0;
		}
	}
	if (r->nmeta == r->capmeta) {
		int cap = r->capmeta ? r->capmeta * 2 : 8;
		aim_meta_entry *m = realloc(r->meta, (size_t)cap * sizeof *m);
		if (!m)
			return aim_error("out of memory");
		r->meta = m;
		r->capmeta = cap;
	}
	r->meta[r->nmeta].key = strdup(key);
	r->meta[r->nmeta].value = strdup(value);
	if (!r->meta[r->nmeta].key || !r->meta[r->nmeta].value)
		return aim_error("out of memory");
	r->nmeta++;
	return 0;
}

const char *aim_record_get_meta(const aim_record *r, const char *key)
{
	for (int i = 0; i < r->nmeta; i++)
		if (!strcmp(r->meta[i].key, key))
			return r->meta[i].value;
	return NULL;
}

/* ---- parsing ------------------------------------------------------------ */

int aim_record_header_len(const void *first8, uint64_t *header_len, const char *what)
{
	const unsigned char *b = first8;
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | b[i];
	if (n < 2 || n > AIM_MAX_HEADER)
		return aim_error("%s: header length %llu is out of range (2..%u)", what,
				 (unsigned long long)n, AIM_MAX_HEADER);
	*header_len = n;
	return 0;
}

typedef struct {
	const char *name;
	json_t *entry;
	aim_dtype dtype;
	int ndim;
	int64_t shape[AIM_MAX_DIMS];
	uint64_t begin, end;
} parsed_entry;

static int cmp_begin(const void *a, const void *b)
{
	const parsed_entry *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

/* Parse and check the header JSON; fills entries (malloc'd) sorted by offset. */
static int parse_header(const char *json, size_t len, json_t **root_out, parsed_entry **out,
			int *nout, uint64_t *data_len, const char *what)
{
	json_error_t jerr;
	if (len == 0 || json[0] != '{')
		return aim_error("%s: header is not a JSON object", what);
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root)
		return aim_error("%s: header is not valid JSON: %s (at byte %d)", what, jerr.text,
				 jerr.position);
	if (!json_is_object(root)) {
		json_decref(root);
		return aim_error("%s: header is not a JSON object", what);
	}
	size_t cap = json_object_size(root);
	parsed_entry *e = calloc(cap ? cap : 1, sizeof *e);
	if (!e) {
		json_decref(root);
		return aim_error("out of memory");
	}
	int n = 0;
	const char *key;
	json_t *val;
	json_object_foreach(root, key, val) {
		if (!strcmp(key, "__metadata__")) {
			if (!json_is_object(val))
				goto bad_meta;
			const char *mk;
			json_t *mv;
			json_object_foreach(val, mk, mv) {
				if (!json_is_string(mv))
					goto bad_meta;
			}
			continue;
		}
		parsed_entry *p = &e[n];
		p->name = key;
		p->entry = val;
		json_t *dt = json_object_get(val, "dtype"), *sh = json_object_get(val, "shape"),
		       *off = json_object_get(val, "data_offsets");
		if (!json_is_object(val) || !json_is_string(dt) || !json_is_array(sh) ||
		    !json_is_array(off) || json_array_size(off) != 2) {
			aim_error("%s: tensor '%s': entry needs dtype, shape and data_offsets", what, key);
			goto fail;
		}
		p->dtype = aim_dtype_parse(json_string_value(dt));
		if (p->dtype == AIM_DTYPE_INVALID) {
			aim_error("%s: tensor '%s': unsupported dtype '%s'", what, key,
				  json_string_value(dt));
			goto fail;
		}
		if (json_array_size(sh) > AIM_MAX_DIMS) {
			aim_error("%s: tensor '%s': %zu dimensions (at most %d)", what, key,
				  json_array_size(sh), AIM_MAX_DIMS);
			goto fail;
		}
		p->ndim = (int)json_array_size(sh);
		for (int d = 0; d < p->ndim; d++) {
			json_t *v = json_array_get(sh, (size_t)d);
			if (!json_is_integer(v) || json_integer_value(v) < 0) {
				aim_error("%s: tensor '%s': shape must be non-negative integers", what, key);
				goto fail;
			}
			p->shape[d] = json_integer_value(v);
		}
		json_t *b = json_array_get(off, 0), *en = json_array_get(off, 1);
		if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
		    json_integer_value(en) < json_integer_value(b)) {
			aim_error("%s: tensor '%s': bad data_offsets", what, key);
			goto fail;
		}
		p->begin = (uint64_t)json_integer_value(b);
		p->end = (uint64_t)json_integer_value(en);
		int64_t numel = aim_shape_numel(p->ndim, p->shape);
		if (numel < 0 || (uint64_t)numel > UINT64_MAX / 8 ||
		    (uint64_t)numel * aim_dtype_size(p->dtype) != p->end - p->begin) {
			aim_error("%s: tensor '%s': %llu bytes for %s of %lld elements", what, key,
				  (unsigned long long)(p->end - p->begin), aim_dtype_name(p->dtype),
				  (long long)numel);
			goto fail;
		}
		n++;
	}
	qsort(e, (size_t)n, sizeof *e, cmp_begin);
	/* As the reference implementation demands: tensors tile the data
	 * section exactly, in offset order, without gaps or overlaps. */
	uint64_t pos = 0;
	for (int i = 0; i < n; i++) {
		if (e[i].begin != pos) {
			aim_error("%s: tensor '%s': data_offsets %s at %llu (expected %llu)", what,
				  e[i].name, e[i].begin < pos ? "overlap" : "leave a gap",
				  (unsigned long long)e[i].begin, (unsigned long long)pos);
			goto fail;
		}
		pos = e[i].end;
	}
	*data_len = pos;
	*root_out = root;
	*out = e;
	*nout = n;
	return 0;
bad_meta:
	aim_error("%s: __metadata__ must be an object of strings", what);
fail:
	free(e);
	json_decref(root);
	return AIM_ERR;
}

int aim_record_data_len(const char *json, size_t json_len, uint64_t *data_len, const char *what)
{
	json_t *root;
	parsed_entry *e;
	int n;
	if (parse_header(json, json_len, &root, &e, &n, data_len, what))
		return AIM_ERR;
	free(e);
	json_decref(root);
	return 0;
}

int aim_record_parse(aim_record *r, void *buf, size_t len, int take, const char *what)
{
	aim_record_clear(r);
	uint64_t hlen = 0, dlen = 0;
	if (len < 8) {
		if (take)
			free(buf);
		return aim_error("%s: %zu bytes is too short for a record", what, len);
	}
	if (aim_record_header_len(buf, &hlen, what))
		goto fail;
	if (hlen > len - 8) {
		aim_error("%s: header of %llu bytes runs past the end (%zu bytes)", what,
			  (unsigned long long)hlen, len);
		goto fail;
	}
	const char *json = (const char *)buf + 8;
	json_t *root;
	parsed_entry *e;
	int n;
	if (parse_header(json, hlen, &root, &e, &n, &dlen, what))
		goto fail;
	if (dlen != len - 8 - hlen) {
		aim_error("%s: data section is %llu bytes but the tensors need %llu", what,
			  (unsigned long long)(len - 8 - hlen), (unsigned long long)dlen);
		free(e);
		json_decref(root);
		goto fail;
	}
	unsigned char *data = (unsigned char *)buf + 8 + hlen;
	int rc = 0;
	for (int i = 0; i < n && !rc; i++) {
		void *p = data + e[i].begin;
		/* safetensors does not promise alignment (a U8 tensor may come
		 * first, a foreign writer may not pad the header): a tensor that
		 * is misaligned for its dtype gets an aligned copy, so no reader
		 * ever loads a float through a misaligned pointer. */
		if ((uintptr_t)p % aim_dtype_size(e[i].dtype)) {
			if (!aim_record_add(r, e[i].name, e[i].dtype, e[i].ndim, e[i].shape, p))
				rc = aim_error_prefix("%s", what);
		} else if (!aim_record_add_ref(r, e[i].name, e[i].dtype, e[i].ndim, e[i].shape, p)) {
			rc = aim_error_prefix("%s", what);
		}
	}
	json_t *meta = json_object_get(root, "__metadata__");
	const char *k;
	json_t *v;
	if (meta)
		json_object_foreach(meta, k, v) {
			if (!rc && aim_record_set_meta(r, k, json_string_value(v)))
				rc = AIM_ERR;
		}
	free(e);
	json_decref(root);
	if (rc) {
		aim_record_clear(r);
		goto fail;
	}
	if (take) {
		r->buf = buf;
		r->buflen = len;
	}
	return 0;
fail:
	if (take)
		free(buf);
	return AIM_ERR;
}

/* ---- serialisation ------------------------------------------------------- */

int aim_record_serialize(const aim_record *r, void **out, size_t *outlen)
{
	void *buf = NULL;
	size_t cap = 0;
	if (aim_record_serialize_into(r, &buf, &cap, outlen))
		return AIM_ERR;
	*out = buf;
	return 0;
}

int aim_record_serialize_into(const aim_record *r, void **bufp, size_t *capp, size_t *outlen)
{
	json_t *root = json_object();
	if (!root)
		return aim_error("out of memory");
	if (r->nmeta) {
		json_t *m = json_object();
		for (int i = 0; i < r->nmeta; i++)
			json_object_set_new(m, r->meta[i].key, json_string(r->meta[i].value));
		json_object_set_new(root, "__metadata__", m);
	}
	uint64_t pos = 0;
	for (int i = 0; i < r->n; i++) {
		const aim_tensor *t = &r->t[i];
		json_t *e = json_object(), *sh = json_array();
		json_object_set_new(e, "dtype", json_string(aim_dtype_name(t->dtype)));
		for (int d = 0; d < t->ndim; d++)
			json_array_append_new(sh, json_integer(t->shape[d]));
		json_object_set_new(e, "shape", sh);
		json_object_set_new(e, "data_offsets",
				    json_pack("[II]", (json_int_t)pos, (json_int_t)(pos + t->nbytes)));
		json_object_set_new(root, t->name, e);
		pos += t->nbytes;
	}
	char *text = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(root);
	if (!text)
		return aim_error("out of memory serialising a record");
	size_t tlen = strlen(text);
	size_t hlen = tlen + ((8 - (8 + tlen) % 8) % 8); /* pad so data is 8-aligned */
	size_t total = 8 + hlen + pos;
	if (total > *capp || !*bufp) {
		void *nb = realloc(*bufp, total ? total : 1);
		if (!nb) {
			free(text);
			return aim_error("out of memory serialising a record");
		}
		*bufp = nb;
		*capp = total ? total : 1;
	}
	unsigned char *buf = *bufp;
	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
	memcpy(buf + 8, text, tlen);
	memset(buf + 8 + tlen, ' ', hlen - tlen);
	free(text);
	unsigned char *d = buf + 8 + hlen;
	for (int i = 0; i < r->n; i++) {
		if (r->t[i].nbytes)
			memcpy(d, r->t[i].data, r->t[i].nbytes);
		d += r->t[i].nbytes;
	}
	*outlen = total;
	return 0;
}

int aim_record_copy(aim_record *dst, const aim_record *src)
{
	aim_record_clear(dst);
	for (int i = 0; i < src->n; i++) {
		const aim_tensor *t = &src->t[i];
		if (!aim_record_add(dst, t->name, t->dtype, t->ndim, t->shape, t->data))
			return AIM_ERR;
	}
	for (int i = 0; i < src->nmeta; i++)
		if (aim_record_set_meta(dst, src->meta[i].key, src->meta[i].value))
			return AIM_ERR;
	return 0;
}
