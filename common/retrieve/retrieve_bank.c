/* The memory bank: prepared once from features streams, or mapped from an
 * index file so that a query starts at once and a bank larger than memory
 * is served from the page cache. Format in retrieve.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "retrieve.h"
#include "stream.h"

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 1024;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, c * elem);
	if (!q)
		return aim_error("out of memory (bank of %zu entries)", need);
	*p = q;
	*cap = c;
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

void aim_bank_begin(aim_bank *b, const aim_prep *p, const char *source)
{
	memset(b, 0, sizeof *b);
	b->pool = p->pool;
	b->normalized = p->normalize;
	b->prep = *p;
	b->source = strdup(source ? source : "-");
}

/* File stamps while appending: none until a source brings some (need),
 * then kept for every row, unknown where a source has none; rows up to n1
 * exist afterwards, those from b->n on unknown. */
static int stamps_reserve(aim_bank *b, size_t n1, int need)
{
	if (!need && !b->own_fsize)
		return 0;
	if (b->cap_stamp < n1) {
		int first = b->own_fsize == NULL;
		size_t cap = n1 * 2;
		int64_t *fs = realloc(b->own_fsize, cap * sizeof *fs);
		if (fs)
			b->own_fsize = fs;
		int64_t *fm = fs ? realloc(b->own_fmtime, cap * sizeof *fm) : NULL;
		if (fm)
			b->own_fmtime = fm;
		uint8_t *fh = fm ? realloc(b->own_fsha, cap * 32) : NULL;
		if (!fh)
			return aim_error("out of memory");
		b->own_fsha = fh;
		b->cap_stamp = cap;
		for (int64_t i = 0; first && i < b->n; i++)
			fs[i] = -1, fm[i] = INT64_MIN, memset(fh + 32 * i, 0, 32);
	}
	for (size_t i = (size_t)b->n; i < n1; i++)
		b->own_fsize[i] = -1, b->own_fmtime[i] = INT64_MIN, memset(b->own_fsha + 32 * i, 0, 32);
	return 0;
}

/* The views of the owned arrays, after every append (they move). */
void aim_bank_own_views(aim_bank *b)
{
	b->fsize = b->own_fsize;
	b->fmtime = b->own_fmtime;
	b->fsha = b->own_fsha;
	b->vec = b->own_vec;
	b->id = b->own_id;
	b->label = b->own_label;
	b->names = b->own_names;
	b->name_off = b->own_off;
}

int aim_bank_append(aim_bank *b, const aim_record *rec, const char *what)
{
	const aim_prep *p = &b->prep;
	aim_tensor *f = aim_record_find(rec, "features");
	if (!f)
		return aim_error("%s: no features tensor", what);
	int64_t D, B = aim_prep_features(f, p, b->n, NULL, &D, what);
	if (B < 0)
		return AIM_ERR;
	if (b->dim && D != b->dim)
		return aim_error("%s: features have dimension %lld, earlier records %lld", what,
				 (long long)D, (long long)b->dim);
	b->dim = D;
	aim_tensor *id = aim_record_find(rec, "id"), *lab = aim_record_find(rec, "label");
	if ((id && (id->dtype != AIM_I64 || id->ndim != 1 || id->shape[0] != B)) ||
	    (lab && (lab->dtype != AIM_I64 || lab->ndim != 1 || lab->shape[0] != B)))
		return aim_error("%s: id and label must be I64 [%lld]", what, (long long)B);
	int rc;
	size_t n1 = (size_t)(b->n + B);
	if ((rc = grow((void **)&b->own_vec, &b->cap_vec, n1 * (size_t)D, sizeof(float))) ||
	    (rc = grow((void **)&b->own_id, &b->cap_row, n1, sizeof(int64_t))) ||
	    (rc = grow((void **)&b->own_off, &b->cap_off, n1, sizeof(int64_t))))
		return rc;
	if (aim_prep_features(f, p, b->n, b->own_vec + b->n * D, &D, what) < 0)
		return AIM_ERR;
	if ((rc = stamps_reserve(b, n1, 0)))
		return rc;
	if (lab && !b->own_label) { /* first labels seen: earlier rows unknown */
		if ((rc = grow((void **)&b->own_label, &b->cap_lab, n1, sizeof(int64_t))))
			return rc;
		for (int64_t i = 0; i < b->n; i++)
			b->own_label[i] = -1;
	} else if (b->own_label && (rc = grow((void **)&b->own_label, &b->cap_lab, n1, sizeof(int64_t)))) {
		return rc;
	}
	char **names = malloc(sizeof(char *) * (size_t)(B ? B : 1));
	if (!names)
		return aim_error("out of memory");
	if ((rc = aim_names_parse(rec, B, names, what))) {
		free(names);
		return rc;
	}
	b->have_names |= aim_record_get_meta(rec, "aim.names") != NULL;
	for (int64_t i = 0; i < B && !rc; i++) {
		int64_t row = b->n + i;
		b->own_id[row] = id ? aim_i64_at(id->data, i) : row;
		if (b->own_label)
			b->own_label[row] = lab ? aim_i64_at(lab->data, i) : -1;
		char idbuf[32];
		const char *s = names[i];
		if (!s) {
			snprintf(idbuf, sizeof idbuf, "%" PRId64, b->own_id[row]);
			s = idbuf;
		}
		size_t l = strlen(s) + 1;
		if ((rc = grow((void **)&b->own_names, &b->cap_names, b->len_names + l, 1)))
			break;
		memcpy(b->own_names + b->len_names, s, l);
		b->own_off[row] = (int64_t)b->len_names;
		b->len_names += l;
	}
	aim_names_free(names, B);
	free(names);
	if (rc)
		return rc;
	b->n += B;
	const char *c = aim_record_get_meta(rec, "aim.classes");
	if (c) {
		free(b->classes);
		b->classes = strdup(c);
	}
	if ((c = aim_record_get_meta(rec, "aim.model")) && !b->model)
		b->model = strdup(c);
	if ((c = aim_record_get_meta(rec, "aim.layers")) && !b->layers)
		b->layers = strdup(c);
	aim_bank_own_views(b);
	return 0;
}

int aim_bank_append_bank(aim_bank *b, const aim_bank *src)
{
	if (src->n == 0)
		return 0;
	if (b->dim && src->dim != b->dim)
		return aim_error("%s: dimension %" PRId64 ", earlier rows %" PRId64, src->source,
				 src->dim, b->dim);
	if ((int)src->pool != (int)b->prep.pool || src->normalized != b->prep.normalize)
		return aim_error("%s: built with --pool %s%s, unlike the rows it would join",
				 src->source, aim_pool_name(src->pool), src->normalized ? "" : " --ip");
	b->dim = src->dim;
	size_t n1 = (size_t)(b->n + src->n), D = (size_t)b->dim;
	int rc;
	if ((rc = grow((void **)&b->own_vec, &b->cap_vec, n1 * D, sizeof(float))) ||
	    (rc = grow((void **)&b->own_id, &b->cap_row, n1, sizeof(int64_t))) ||
	    (rc = grow((void **)&b->own_off, &b->cap_off, n1, sizeof(int64_t))))
		return rc;
	if ((rc = stamps_reserve(b, n1, src->fsize != NULL)))
		return rc;
	int had_labels = b->own_label != NULL;
	if ((src->label || had_labels) && (rc = grow((void **)&b->own_label, &b->cap_lab, n1, sizeof(int64_t))))
		return rc;
	if (src->label && !had_labels)
		for (int64_t i = 0; i < b->n; i++)
			b->own_label[i] = -1;
	char buf[32];
	for (int64_t i = 0; i < src->n; i++) {
		int64_t row = b->n + i;
		memcpy(b->own_vec + (size_t)row * D, src->vec + (size_t)i * D, sizeof(float) * D);
		b->own_id[row] = src->id[i];
		if (b->own_label)
			b->own_label[row] = src->label ? src->label[i] : -1;
		if (b->own_fsize) {
			aim_stamp st = aim_bank_stamp(src, i);
			b->own_fsize[row] = st.size;
			b->own_fmtime[row] = st.mtime_ns;
			memset(b->own_fsha + 32 * row, 0, 32);
			if (st.has_hash)
				memcpy(b->own_fsha + 32 * row, st.sha256, 32);
		}
		const char *s = aim_bank_name(src, i, buf, sizeof buf);
		size_t l = strlen(s) + 1;
		if ((rc = grow((void **)&b->own_names, &b->cap_names, b->len_names + l, 1)))
			return rc;
		memcpy(b->own_names + b->len_names, s, l);
		b->own_off[row] = (int64_t)b->len_names;
		b->len_names += l;
	}
	b->have_names |= src->names != NULL;
	b->n = (int64_t)n1;
	if (src->classes && !b->classes)
		b->classes = strdup(src->classes);
	if (src->model && !b->model)
		b->model = strdup(src->model);
	if (src->layers && !b->layers)
		b->layers = strdup(src->layers);
	aim_bank_own_views(b);
	return 0;
}

void aim_bank_end(aim_bank *b)
{
	if (!b->have_names) { /* names would only repeat the ids */
		free(b->own_names), free(b->own_off);
		b->own_names = NULL, b->own_off = NULL;
	}
	aim_bank_own_views(b);
}

int aim_bank_from_streams(aim_bank *b, const char *const *paths, int npaths, const aim_prep *p)
{
	aim_bank_begin(b, p, npaths ? paths[0] : "-");
	aim_reader *rd = aim_reader_open(paths, npaths);
	if (!rd)
		return AIM_ERR;
	aim_record rec;
	aim_record_init(&rec);
	int rc;
	while ((rc = aim_reader_next(rd, &rec)) == 1)
		if ((rc = aim_bank_append(b, &rec, aim_reader_where(rd))) < 0)
			break;
	aim_record_free(&rec);
	aim_reader_close(rd);
	if (rc < 0) {
		aim_bank_free(b);
		return AIM_ERR;
	}
	if (b->n == 0) {
		aim_error("%s: empty bank: no samples", b->source);
		aim_bank_free(b);
		return AIM_ERR;
	}
	aim_bank_end(b);
	return 0;
}

int aim_bank_is_index(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return 0;
	unsigned char h8[8];
	int is = 0;
	if (fread(h8, 1, 8, fp) == 8 && !(h8[0] == 0x28 && h8[1] == 0xB5 && h8[2] == 0x2F && h8[3] == 0xFD)) {
		uint64_t n = 0;
		for (int i = 7; i >= 0; i--)
			n = n << 8 | h8[i];
		if (n > 0 && n <= AIM_MAX_HEADER) {
			char *hdr = malloc(n + 1);
			if (hdr && fread(hdr, 1, n, fp) == n) {
				hdr[n] = 0;
				is = strstr(hdr, "\"aim.index\"") != NULL;
			}
			free(hdr);
		}
	}
	fclose(fp);
	return is;
}

static const aim_tensor *need(const aim_record *r, const char *name, aim_dtype dt, int ndim,
			      int64_t n0, const char *path)
{
	aim_tensor *t = aim_record_find(r, name);
	if (t && ((uintptr_t)t->data % aim_dtype_size(dt)) != 0) {
		aim_error("%s: index tensor %s is not aligned (file not written by aim-retrieve?)",
			  path, name);
		return NULL;
	}
	if (!t || t->dtype != dt || t->ndim != ndim || (n0 >= 0 && t->shape[0] != n0)) {
		aim_error("%s: index tensor %s missing or not %s with %d dimensions%s", path, name,
			  aim_dtype_name(dt), ndim, n0 >= 0 ? " matching the bank" : "");
		return NULL;
	}
	return t;
}

int aim_bank_open_index(aim_bank *b, const char *path)
{
	memset(b, 0, sizeof *b);
	b->source = strdup(path);
	b->file = calloc(1, sizeof *b->file);
	if (!b->file || aim_st_open(b->file, path)) {
		free(b->file);
		b->file = NULL;
		aim_bank_free(b);
		return AIM_ERR;
	}
	const aim_record *r = &b->file->rec;
	const char *fmt = aim_record_get_meta(r, "aim.index");
	const char *pool = aim_record_get_meta(r, "aim.pool");
	const char *norm = aim_record_get_meta(r, "aim.normalized");
	const char *base = aim_record_get_meta(r, "aim.base");
	if (!fmt || strcmp(fmt, AIM_INDEX_FORMAT) || !pool || aim_pool_parse(pool) < 0 || !norm) {
		aim_error("%s: not a %s index (aim.index, aim.pool, aim.normalized)", path,
			  AIM_INDEX_FORMAT);
		goto fail;
	}
	b->pool = aim_pool_parse(pool);
	b->normalized = !strcmp(norm, "1");
	b->base = base ? strtoll(base, NULL, 10) : 0;
	const aim_tensor *v = need(r, "vectors", AIM_F32, 2, -1, path);
	if (!v)
		goto fail;
	b->n = v->shape[0];
	b->dim = v->shape[1];
	b->vec = v->data;
	const aim_tensor *id = need(r, "id", AIM_I64, 1, b->n, path);
	if (!id)
		goto fail;
	b->id = id->data;
	if (aim_record_find(r, "label")) {
		const aim_tensor *l = need(r, "label", AIM_I64, 1, b->n, path);
		if (!l)
			goto fail;
		b->label = l->data;
	}
	if (aim_record_find(r, "names")) {
		const aim_tensor *nm = need(r, "names", AIM_U8, 1, -1, path);
		const aim_tensor *off = nm ? need(r, "name_offsets", AIM_I64, 1, b->n, path) : NULL;
		if (!off)
			goto fail;
		int64_t L = nm->shape[0];
		const char *s = nm->data;
		const int64_t *o = off->data;
		if (L == 0 || s[L - 1] != 0) {
			aim_error("%s: index names are not NUL-terminated", path);
			goto fail;
		}
		for (int64_t i = 0; i < b->n; i++)
			if (o[i] < 0 || o[i] >= L) {
				aim_error("%s: index name offset %lld out of range", path, (long long)i);
				goto fail;
			}
		b->names = s;
		b->name_off = o;
	}
	if (aim_record_find(r, "file_size") || aim_record_find(r, "file_mtime")) {
		const aim_tensor *fs = need(r, "file_size", AIM_I64, 1, b->n, path);
		const aim_tensor *fm = fs ? need(r, "file_mtime", AIM_I64, 1, b->n, path) : NULL;
		if (!fm)
			goto fail;
		b->fsize = fs->data;
		b->fmtime = fm->data;
	}
	if (aim_record_find(r, "file_sha256")) {
		const aim_tensor *h = need(r, "file_sha256", AIM_U8, 2, b->n, path);
		if (!h || h->shape[1] != 32) {
			if (h)
				aim_error("%s: index tensor file_sha256 is not [N, 32]", path);
			goto fail;
		}
		b->fsha = h->data;
	}
	const char *c;
	b->classes = dup_or_null(aim_record_get_meta(r, "aim.classes"));
	if ((c = aim_record_get_meta(r, "aim.model")))
		b->model = strdup(c);
	if ((c = aim_record_get_meta(r, "aim.layers")))
		b->layers = strdup(c);
	return 0; /* an empty index is valid (what is left when every image is gone) */
fail:
	aim_bank_free(b);
	return AIM_ERR;
}

int aim_bank_save_index(const aim_bank *b, const char *path)
{
	aim_record r;
	aim_record_init(&r);
	int64_t shape[2] = {b->n, b->dim};
	char buf[32];
	int rc = 0;
	int64_t *off = NULL;
	char *names = NULL;
	int64_t hshape[2] = {b->n, 32};
	if (!aim_record_add_ref(&r, "vectors", AIM_F32, 2, shape, (void *)b->vec) ||
	    !aim_record_add_ref(&r, "id", AIM_I64, 1, shape, (void *)b->id) ||
	    (b->label && !aim_record_add_ref(&r, "label", AIM_I64, 1, shape, (void *)b->label)) ||
	    (b->fsize && !aim_record_add_ref(&r, "file_size", AIM_I64, 1, shape, (void *)b->fsize)) ||
	    (b->fmtime && !aim_record_add_ref(&r, "file_mtime", AIM_I64, 1, shape, (void *)b->fmtime)) ||
	    (b->fsha && !aim_record_add_ref(&r, "file_sha256", AIM_U8, 2, hshape, (void *)b->fsha)))
		rc = AIM_ERR;
	if (!rc && b->names && b->n > 0) {
		/* A shard keeps only its own names: rebuild a compact blob. */
		size_t len = 0;
		for (int64_t i = 0; i < b->n; i++)
			len += strlen(b->names + b->name_off[i]) + 1;
		off = malloc(sizeof(int64_t) * (size_t)b->n);
		names = malloc(len);
		if (!off || !names) {
			rc = aim_error("out of memory");
		} else {
			size_t at = 0;
			for (int64_t i = 0; i < b->n; i++) {
				const char *s = b->names + b->name_off[i];
				size_t l = strlen(s) + 1;
				memcpy(names + at, s, l);
				off[i] = (int64_t)at;
				at += l;
			}
			/* 8-byte tensors first: the names blob, of any length, last,
			 * so every tensor of the mapped file stays aligned. */
			int64_t ls = (int64_t)len;
			if (!aim_record_add_ref(&r, "name_offsets", AIM_I64, 1, shape, off) ||
			    !aim_record_add_ref(&r, "names", AIM_U8, 1, &ls, names))
				rc = AIM_ERR;
		}
	}
	if (!rc) {
		snprintf(buf, sizeof buf, "%" PRId64, b->base);
		rc = aim_record_set_meta(&r, "aim.index", AIM_INDEX_FORMAT) ||
		     aim_record_set_meta(&r, "aim.pool", aim_pool_name(b->pool)) ||
		     aim_record_set_meta(&r, "aim.normalized", b->normalized ? "1" : "0") ||
		     aim_record_set_meta(&r, "aim.base", buf) ||
		     (b->classes && aim_record_set_meta(&r, "aim.classes", b->classes)) ||
		     (b->model && aim_record_set_meta(&r, "aim.model", b->model)) ||
		     (b->layers && aim_record_set_meta(&r, "aim.layers", b->layers));
		rc = rc ? AIM_ERR : 0;
	}
	if (!rc)
		rc = aim_st_write(path, &r);
	else
		aim_error_prefix("%s", path);
	aim_record_free(&r);
	free(off);
	free(names);
	return rc;
}

void aim_bank_shard(aim_bank *b, int i, int n)
{
	int64_t lo = b->n * i / n, hi = b->n * (i + 1) / n;
	b->vec += lo * b->dim;
	b->id += lo;
	if (b->fsize)
		b->fsize += lo, b->fmtime += lo;
	if (b->fsha)
		b->fsha += lo * 32;
	if (b->label)
		b->label += lo;
	if (b->name_off)
		b->name_off += lo;
	b->base += lo;
	b->n = hi - lo;
}

void aim_bank_free(aim_bank *b)
{
	if (b->file) {
		aim_st_close(b->file);
		free(b->file);
	}
	free(b->own_vec), free(b->own_id), free(b->own_label), free(b->own_off), free(b->own_names);
	free(b->own_fsize), free(b->own_fmtime), free(b->own_fsha);
	free(b->classes), free(b->model), free(b->layers), free(b->source);
	memset(b, 0, sizeof *b);
}

aim_stamp aim_bank_stamp(const aim_bank *b, int64_t row)
{
	aim_stamp st = AIM_STAMP_UNKNOWN;
	if (b->fsize) {
		st.size = b->fsize[row];
		st.mtime_ns = b->fmtime[row];
	}
	if (b->fsha) {
		static const uint8_t zero[32];
		memcpy(st.sha256, b->fsha + 32 * row, 32);
		st.has_hash = memcmp(st.sha256, zero, 32) != 0;
	}
	return st;
}

const char *aim_bank_name(const aim_bank *b, int64_t row, char *buf, size_t n)
{
	if (b->names)
		return b->names + b->name_off[row];
	snprintf(buf, n, "%" PRId64, b->id[row]);
	return buf;
}
