/* Features, labels and class lists of a stream record (probe_data.h). */
#include "probe_data.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "stream.h"

void aim_label_buf_free(aim_label_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->cap = 0;
}

int aim_record_labels(const aim_record *r, int64_t B, const char *what, aim_label_buf *buf,
		      const int64_t **labels)
{
	const aim_tensor *l = aim_record_find(r, "label");
	char s[96];
	*labels = NULL;
	if (!l)
		return AIM_OK;
	if (l->dtype != AIM_I64 || l->ndim != 1 || l->shape[0] != B)
		return aim_error("%s: 'label' must be I64 [%lld], not %s %s", what, (long long)B,
				 aim_dtype_name(l->dtype), aim_shape_str(l->ndim, l->shape, s, sizeof s));
	if ((uintptr_t)l->data % _Alignof(int64_t) == 0) {
		*labels = l->data;
		return AIM_OK;
	}
	if ((size_t)B > buf->cap) {
		int64_t *p = realloc(buf->p, (size_t)B * sizeof(int64_t));
		if (!p)
			return aim_error("%s: out of memory", what);
		buf->p = p;
		buf->cap = (size_t)B;
	}
	memcpy(buf->p, l->data, (size_t)B * sizeof(int64_t));
	*labels = buf->p;
	return AIM_OK;
}

int aim_features_shape(const aim_record *r, const char *what, int64_t *B, int64_t *K,
		       int64_t *D, aim_label_buf *buf, const int64_t **labels)
{
	const aim_tensor *f = aim_record_find(r, "features");
	char s[96];
	if (!f)
		return aim_error("%s: no 'features' tensor (is this a features stream?)", what);
	if (f->dtype != AIM_F32 && f->dtype != AIM_F16 && f->dtype != AIM_BF16)
		return aim_error("%s: features are %s, not a float type", what,
				 aim_dtype_name(f->dtype));
	if (f->ndim == 3) {
		*B = f->shape[0], *K = f->shape[1], *D = f->shape[2];
	} else if (f->ndim == 2) {
		*B = f->shape[0], *K = 1, *D = f->shape[1];
	} else {
		return aim_error("%s: features have shape %s; expected [B, K, D] or [B, D]", what,
				 aim_shape_str(f->ndim, f->shape, s, sizeof s));
	}
	if (*K <= 0 || *D <= 0)
		return aim_error("%s: empty features %s", what,
				 aim_shape_str(f->ndim, f->shape, s, sizeof s));
	return aim_record_labels(r, *B, what, buf, labels);
}

void aim_classes_free(char **names, int n)
{
	if (!names)
		return;
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int aim_classes_parse(const aim_record *r, const char *what, char ***names)
{
	*names = NULL;
	const char *v = aim_record_get_meta(r, "aim.classes");
	if (!v)
		return 0;
	json_error_t je;
	json_t *j = json_loads(v, 0, &je);
	if (!j || !json_is_array(j)) {
		json_decref(j);
		return aim_error("%s: metadata aim.classes is not a JSON list", what);
	}
	int n = (int)json_array_size(j);
	char **out = calloc(n ? (size_t)n : 1, sizeof *out);
	if (!out) {
		json_decref(j);
		return aim_error("%s: out of memory", what);
	}
	for (int i = 0; i < n; i++) {
		json_t *e = json_array_get(j, (size_t)i);
		out[i] = json_is_string(e) ? strdup(json_string_value(e)) : json_dumps(e, JSON_ENCODE_ANY);
		if (!out[i]) {
			aim_classes_free(out, i);
			json_decref(j);
			return aim_error("%s: out of memory", what);
		}
	}
	json_decref(j);
	*names = out;
	return n;
}

int aim_classes_equal(char **a, int na, char **b, int nb)
{
	if (na != nb)
		return 0;
	for (int i = 0; i < na; i++)
		if (strcmp(a[i], b[i]))
			return 0;
	return 1;
}

int aim_num_heads_json(const char *text)
{
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	int h = 0;
	if (json_is_object(j)) {
		json_t *e = json_object_get(j, "num_heads");
		if (json_is_integer(e))
			h = (int)json_integer_value(e);
	}
	json_decref(j);
	return h > 0 ? h : 0;
}

int aim_features_heads(const aim_record *r)
{
	return aim_num_heads_json(aim_record_get_meta(r, "aim.config"));
}

void aim_features_to_f32(float *dst, const aim_tensor *t)
{
	int64_t n = aim_tensor_numel(t);
	size_t es = aim_dtype_size(t->dtype);
	const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < n; i += chunk) {
		int64_t m = n - i < chunk ? n - i : chunk;
		aim_convert(dst + i, AIM_F32, (const char *)t->data + (size_t)i * es, t->dtype, (size_t)m);
	}
}

/* The 0-based pass a record belongs to (aim.epoch), or -1 if not recorded. */
int aim_record_epoch(const aim_record *r)
{
	const char *v = aim_record_get_meta(r, "aim.epoch");
	return v ? atoi(v) : -1;
}

/* Labelled samples of one pass over a rewindable patches file (counting
 * only the first pass of a looping producer's output). */
int64_t aim_reader_count_labelled(aim_reader *rd)
{
	aim_record r;
	aim_record_init(&r);
	int64_t n = 0;
	int rc;
	while ((rc = aim_reader_next(rd, &r)) == 1) {
		if (aim_record_epoch(&r) > 0)
			break;
		const aim_tensor *l = aim_record_find(&r, "label");
		if (l && l->dtype == AIM_I64)
			for (int64_t i = 0; i < aim_tensor_numel(l); i++) {
				int64_t v;
				memcpy(&v, (const char *)l->data + i * 8, 8); /* may be unaligned */
				n += v >= 0;
			}
	}
	aim_record_free(&r);
	if (rc < 0)
		return rc;
	if (aim_reader_rewind(rd))
		return AIM_ERR;
	return n;
}

int64_t aim_keep_labelled(aim_labelled *k, const float *x, const int64_t *labels, int64_t B,
			  size_t per)
{
	if ((size_t)B * per > k->cap) {
		k->cap = (size_t)B * per;
		k->x = realloc(k->x, k->cap * sizeof(float));
		k->y = realloc(k->y, (size_t)B * sizeof(int64_t));
		if (!k->x || !k->y)
			return aim_error("out of memory");
	}
	int64_t n = 0;
	for (int64_t b = 0; b < B; b++)
		if (labels[b] >= 0) {
			memcpy(k->x + (size_t)n * per, x + (size_t)b * per, per * sizeof(float));
			k->y[n++] = labels[b];
		}
	return n;
}

void aim_labelled_free(aim_labelled *k)
{
	free(k->x), free(k->y);
}
