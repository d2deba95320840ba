/* PyTorch zip checkpoints: find PREFIX/data.pkl, describe its tensors with
 * the restricted pickle reader, check every size against the archive, then
 * fill the tensors storage by storage, reading each storage entry once. */
#include "pth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "err.h"
#include "pickle.h"
#include "weights_file.h"

#define MAX_PICKLE (1u << 30)

int aim_pth_sniff(const char *path)
{
	unsigned char head[4];
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t n = fread(head, 1, sizeof head, f);
	fclose(f);
	return n == 4 && !memcmp(head, "PK\3\4", 4);
}

static int open_error(const char *path, int zerr)
{
	if (zerr == ZIP_ER_NOZIP) {
		if (aim_wf_sniff(path) == AIM_WF_TORCH_LEGACY)
			return aim_error("%s: " AIM_WF_LEGACY_ADVICE, path);
		return aim_error("%s: not a PyTorch checkpoint (not a zip archive, or a truncated one)",
				 path);
	}
	zip_error_t ze;
	zip_error_init_with_code(&ze, zerr);
	int rc = aim_error("%s: %s", path, zip_error_strerror(&ze));
	zip_error_fini(&ze);
	return rc;
}

/* The one PREFIX/data.pkl of the archive, PREFIX a single directory. */
static int find_prefix(zip_t *za, const char *path, char **prefix)
{
	zip_int64_t n = zip_get_num_entries(za, 0);
	const char *found = NULL;
	int torchscript = 0;
	for (zip_int64_t i = 0; i < n; i++) {
		const char *name = zip_get_name(za, (zip_uint64_t)i, 0);
		if (!name)
			continue;
		size_t len = strlen(name);
		const char *slash = strchr(name, '/');
		if (slash && slash > name && !strcmp(slash, "/data.pkl")) {
			if (found)
				return aim_error("%s: two pickles (%s and %s); not a torch.save checkpoint",
						 path, found, name);
			found = name;
		}
		if (len >= 14 && !strcmp(name + len - 14, "/constants.pkl"))
			torchscript = 1;
	}
	if (torchscript)
		return aim_error("%s: a TorchScript archive (torch.jit.save), not a state dict; "
				 "save model.state_dict() with torch.save", path);
	if (!found)
		return aim_error("%s: zip archive without PREFIX/data.pkl; not a torch.save checkpoint",
				 path);
	*prefix = strndup(found, (size_t)(strchr(found, '/') - found));
	return *prefix ? 0 : aim_error("out of memory");
}

static int locate(zip_t *za, const char *path, const char *prefix, const char *rest,
		  zip_uint64_t *idx, zip_stat_t *st)
{
	char name[512];
	snprintf(name, sizeof name, "%s/%s", prefix, rest);
	zip_int64_t i = zip_name_locate(za, name, 0);
	if (i < 0)
		return aim_error("%s: no entry %s in the archive", path, name);
	if (zip_stat_index(za, (zip_uint64_t)i, 0, st) < 0)
		return aim_error("%s: %s: %s", path, name, zip_strerror(za));
	if ((st->valid & ZIP_STAT_ENCRYPTION_METHOD) && st->encryption_method != ZIP_EM_NONE)
		return aim_error("%s: %s is encrypted", path, name);
	if (!(st->valid & ZIP_STAT_SIZE) || !(st->valid & ZIP_STAT_COMP_SIZE) ||
	    !(st->valid & ZIP_STAT_COMP_METHOD))
		return aim_error("%s: %s: sizes unknown", path, name);
	if (st->comp_method == ZIP_CM_STORE) {
		if (st->comp_size != st->size)
			return aim_error("%s: %s: stored entry of %llu bytes claims %llu", path, name,
					 (unsigned long long)st->comp_size,
					 (unsigned long long)st->size);
	} else if (st->comp_method == ZIP_CM_DEFLATE) {
		/* deflate expands at most ~1032:1; more is a lie or a bomb */
		if (st->size / 1032 > st->comp_size + 1024)
			return aim_error("%s: %s: %llu bytes claimed from %llu compressed", path, name,
					 (unsigned long long)st->size,
					 (unsigned long long)st->comp_size);
	} else {
		return aim_error("%s: %s: compression method %u is not supported (stored or deflated only)",
				 path, name, (unsigned)st->comp_method);
	}
	*idx = (zip_uint64_t)i;
	return 0;
}

/* Read a whole entry, exactly its declared st->size bytes, into dst: data
 * that ends early, runs on, or fails libzip's CRC check is an error. */
static int read_entry(zip_t *za, const char *path, zip_uint64_t idx, const zip_stat_t *st,
		      void *dst)
{
	zip_file_t *zf = zip_fopen_index(za, idx, 0);
	if (!zf)
		return aim_error("%s: %s: %s", path, st->name, zip_strerror(za));
	int rc = 0;
	unsigned char *p = dst;
	uint64_t left = st->size;
	while (left && !rc) {
		zip_int64_t got = zip_fread(zf, p, left);
		if (got < 0)
			rc = aim_error("%s: %s: %s", path, st->name, zip_file_strerror(zf));
		else if (got == 0)
			rc = aim_error("%s: %s: the data ends after %llu of its declared %llu bytes",
				       path, st->name, (unsigned long long)(st->size - left),
				       (unsigned long long)st->size);
		p += got > 0 ? got : 0;
		left -= got > 0 ? (uint64_t)got : 0;
	}
	if (!rc) { /* at the declared end: the data must end too (libzip checks the CRC here) */
		unsigned char extra;
		zip_int64_t got = zip_fread(zf, &extra, 1);
		if (got < 0)
			rc = aim_error("%s: %s: %s", path, st->name, zip_file_strerror(zf));
		else if (got > 0)
			rc = aim_error("%s: %s: the data runs past its declared %llu bytes", path,
				       st->name, (unsigned long long)st->size);
	}
	zip_fclose(zf);
	return rc;
}

static int is_contiguous(const aim_pickle_tensor *t)
{
	int64_t expect = 1;
	for (int d = t->ndim - 1; d >= 0; d--) {
		if (t->shape[d] != 1 && t->stride[d] != expect)
			return 0;
		expect *= t->shape[d];
	}
	return 1;
}

/* Copy a strided view (numel > 0) into dst in row-major order. */
static void gather(unsigned char *dst, const unsigned char *src, size_t esz, int ndim,
		   const int64_t *shape, const int64_t *stride)
{
	if (ndim == 0) {
		memcpy(dst, src, esz);
		return;
	}
	int64_t idx[AIM_MAX_DIMS] = {0};
	int last = ndim - 1;
	size_t row = (size_t)shape[last] * esz;
	for (;;) {
		int64_t off = 0;
		for (int d = 0; d < last; d++)
			off += idx[d] * stride[d];
		const unsigned char *s = src + (size_t)off * esz;
		if (stride[last] == 1)
			memcpy(dst, s, row);
		else
			for (int64_t j = 0; j < shape[last]; j++)
				memcpy(dst + (size_t)j * esz, s + (size_t)(j * stride[last]) * esz, esz);
		dst += row;
		int d = last - 1;
		while (d >= 0 && ++idx[d] == shape[d])
			idx[d--] = 0;
		if (d < 0)
			return;
	}
}

static void swap_bytes(unsigned char *p, size_t esz, size_t n)
{
	for (size_t i = 0; i < n; i++, p += esz)
		for (size_t a = 0, b = esz - 1; a < b; a++, b--) {
			unsigned char c = p[a];
			p[a] = p[b];
			p[b] = c;
		}
}

typedef struct {
	zip_t *za;
	const char *path, *prefix;
	int big_endian;
} loader;

/* The entry of the storage of tensors pt[order[0..n)], whose size must
 * be what the pickle says for each of them. */
static int locate_storage(loader *L, const aim_pickle_tensors *ts, const int *order, int n,
			  zip_uint64_t *idx, zip_stat_t *stp)
{
	char rest[96];
	snprintf(rest, sizeof rest, "data/%s", ts->t[order[0]].storage_key);
	if (locate(L->za, L->path, L->prefix, rest, idx, stp))
		return AIM_ERR;
	zip_stat_t st = *stp;
	for (int i = 0; i < n; i++) {
		const aim_pickle_tensor *pt = &ts->t[order[i]];
		uint64_t storage_bytes;
		if (__builtin_mul_overflow((uint64_t)pt->storage_numel,
					   (uint64_t)aim_dtype_size(pt->dtype), &storage_bytes) ||
		    storage_bytes != st.size)
			return aim_error("%s: tensor '%s': storage %s holds %llu bytes, but the pickle "
					 "says %lld elements of %zu bytes",
					 L->path, pt->name, st.name, (unsigned long long)st.size,
					 (long long)pt->storage_numel, aim_dtype_size(pt->dtype));
	}
	return 0;
}

/* How many tensors from order[k] on share its storage. */
static int group_len(const aim_pickle_tensors *ts, const int *order, int k)
{
	int n = 1;
	while (k + n < ts->n && !strcmp(ts->t[order[k]].storage_key, ts->t[order[k + n]].storage_key))
		n++;
	return n;
}

/* The tensors of one storage: pt[order[0..n)], each added to the record
 * as rt[order[i]]. The entry is read once, straight into the tensor when
 * one tensor is the whole storage, else into a buffer the views are
 * copied from. */
static int load_storage(loader *L, const aim_pickle_tensors *ts, aim_tensor *const *rt,
			const int *order, int n)
{
	const aim_pickle_tensor *p0 = &ts->t[order[0]];
	zip_uint64_t idx;
	zip_stat_t st;
	size_t esz;
	if (locate_storage(L, ts, order, n, &idx, &st))
		return AIM_ERR;
	if (n == 1 && p0->offset == 0 && rt[order[0]]->nbytes == st.size && is_contiguous(p0))
		return read_entry(L->za, L->path, idx, &st, rt[order[0]]->data);
	unsigned char *buf = malloc(st.size ? st.size : 1);
	if (!buf)
		return aim_error("%s: out of memory for storage %s (%llu bytes)", L->path, st.name,
				 (unsigned long long)st.size);
	int rc = read_entry(L->za, L->path, idx, &st, buf);
	for (int i = 0; i < n && !rc; i++) {
		const aim_pickle_tensor *pt = &ts->t[order[i]];
		aim_tensor *t = rt[order[i]];
		esz = aim_dtype_size(pt->dtype);
		if (t->nbytes == 0)
			continue;
		const unsigned char *src = buf + (size_t)pt->offset * esz;
		if (is_contiguous(pt))
			memcpy(t->data, src, t->nbytes);
		else
			gather(t->data, src, esz, pt->ndim, pt->shape, pt->stride);
	}
	free(buf);
	return rc;
}

static int by_storage(const void *a, const void *b, void *ctx)
{
	const aim_pickle_tensors *ts = ctx;
	int i = *(const int *)a, j = *(const int *)b;
	int c = strcmp(ts->t[i].storage_key, ts->t[j].storage_key);
	return c ? c : (i > j) - (i < j);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The pickle's names are unique among themselves (pickle.c); none may be
 * in r already. One sort and a binary search per name. */
static int check_new_names(const loader *L, const aim_record *r, const aim_pickle_tensors *ts)
{
	if (r->n == 0)
		return 0;
	const char **names = malloc((size_t)r->n * sizeof *names);
	if (!names)
		return aim_error("out of memory");
	for (int i = 0; i < r->n; i++)
		names[i] = r->t[i].name;
	qsort(names, (size_t)r->n, sizeof *names, by_name);
	int rc = 0;
	for (int i = 0; i < ts->n && !rc; i++) {
		const char *key = ts->t[i].name;
		if (bsearch(&key, names, (size_t)r->n, sizeof *names, by_name))
			rc = aim_error("%s: tensor '%s' appears twice", L->path, key);
	}
	free(names);
	return rc;
}

/* A view is copied out whole, so a stride-0 view of one element could ask
 * for any number of bytes: the tensors together may hold at most
 * AIM_PTH_VIEW_FACTOR x the bytes of the storages they come from, plus
 * AIM_PTH_VIEW_SLACK_MIB MiB (pth.h). order groups the tensors by storage. */
static int check_view_bytes(const loader *L, const aim_pickle_tensors *ts, const int *order)
{
	uint64_t storages = 0, tensors = 0;
	const aim_pickle_tensor *worst = NULL;
	double worst_ratio = 1;
	for (int k = 0; k < ts->n; k++) {
		const aim_pickle_tensor *pt = &ts->t[order[k]];
		size_t esz = aim_dtype_size(pt->dtype);
		if (k == 0 || strcmp(pt->storage_key, ts->t[order[k - 1]].storage_key))
			storages += (uint64_t)pt->storage_numel * esz; /* = its entry's size, checked */
		int64_t numel = aim_shape_numel(pt->ndim, pt->shape);
		uint64_t bytes;
		if (numel < 0 || __builtin_mul_overflow((uint64_t)numel, (uint64_t)esz, &bytes) ||
		    __builtin_add_overflow(tensors, bytes, &tensors))
			return aim_error("%s: tensor '%s': its size overflows", L->path, pt->name);
		double ratio = pt->extent ? (double)numel / (double)pt->extent : 1;
		if (ratio > worst_ratio) {
			worst_ratio = ratio;
			worst = pt;
		}
	}
	uint64_t limit = storages * AIM_PTH_VIEW_FACTOR + ((uint64_t)AIM_PTH_VIEW_SLACK_MIB << 20);
	if (tensors <= limit)
		return 0;
	if (worst)
		return aim_error("%s: tensor '%s' repeats %lld storage elements %.0f times (a stride-0 "
				 "view); copied out, the tensors would take %llu bytes, more than "
				 "%d x their storages' %llu bytes + %d MiB",
				 L->path, worst->name, (long long)worst->extent, worst_ratio,
				 (unsigned long long)tensors, AIM_PTH_VIEW_FACTOR,
				 (unsigned long long)storages, AIM_PTH_VIEW_SLACK_MIB);
	return aim_error("%s: its tensors are views that, copied out, would take %llu bytes, more "
			 "than %d x their storages' %llu bytes + %d MiB",
			 L->path, (unsigned long long)tensors, AIM_PTH_VIEW_FACTOR,
			 (unsigned long long)storages, AIM_PTH_VIEW_SLACK_MIB);
}

/* Add every tensor to r (in the pickle's order), then fill them storage by
 * storage, each storage entry read once. */
static int load_tensors(loader *L, const aim_pickle_tensors *ts, aim_record *r)
{
	int *order = malloc((size_t)ts->n * sizeof *order);
	aim_tensor **rt = malloc((size_t)ts->n * sizeof *rt);
	int rc = order && rt ? 0 : aim_error("out of memory");
	for (int i = 0; i < ts->n && !rc; i++)
		order[i] = i;
	if (!rc) {
		qsort_r(order, (size_t)ts->n, sizeof *order, by_storage, (void *)ts);
		rc = check_new_names(L, r, ts);
	}
	for (int k = 0, n; k < ts->n && !rc; k += n) { /* every size checked before allocating */
		zip_uint64_t idx;
		zip_stat_t st;
		n = group_len(ts, order, k);
		rc = locate_storage(L, ts, order + k, n, &idx, &st);
	}
	if (!rc)
		rc = check_view_bytes(L, ts, order);
	for (int i = 0; i < ts->n && !rc; i++) {
		const aim_pickle_tensor *pt = &ts->t[i];
		if (!aim_record_add_new(r, pt->name, pt->dtype, pt->ndim, pt->shape))
			rc = aim_error_prefix("%s", L->path);
	}
	/* pointers only now: the record's array moves while it grows */
	for (int i = 0; i < ts->n && !rc; i++)
		rt[i] = &r->t[r->n - ts->n + i];
	for (int k = 0, n; k < ts->n && !rc; k += n) {
		n = group_len(ts, order, k);
		rc = load_storage(L, ts, rt, order + k, n);
	}
	for (int i = 0; i < ts->n && !rc && L->big_endian; i++)
		swap_bytes(rt[i]->data, aim_dtype_size(rt[i]->dtype),
			   rt[i]->nbytes / aim_dtype_size(rt[i]->dtype));
	free(order);
	free(rt);
	return rc;
}

/* PREFIX/byteorder ("little" or "big") exists since torch 2.1; absent means
 * little-endian. */
static int read_byteorder(loader *L)
{
	char name[512], text[8] = {0};
	snprintf(name, sizeof name, "%s/byteorder", L->prefix);
	if (zip_name_locate(L->za, name, 0) < 0)
		return 0;
	zip_uint64_t idx;
	zip_stat_t st;
	if (locate(L->za, L->path, L->prefix, "byteorder", &idx, &st))
		return AIM_ERR;
	if (st.size > 6 || read_entry(L->za, L->path, idx, &st, text))
		return aim_error("%s: unreadable %s", L->path, name);
	if (!strcmp(text, "big"))
		L->big_endian = 1;
	else if (strcmp(text, "little"))
		return aim_error("%s: %s says '%s', not little or big", L->path, name, text);
	return 0;
}

static int read_pickle(loader *L, aim_pickle_tensors *ts)
{
	zip_uint64_t idx;
	zip_stat_t st;
	if (locate(L->za, L->path, L->prefix, "data.pkl", &idx, &st))
		return AIM_ERR;
	if (st.size > MAX_PICKLE)
		return aim_error("%s: %s is %llu bytes, more than a state dict needs", L->path,
				 st.name, (unsigned long long)st.size);
	void *buf = malloc(st.size ? st.size : 1);
	if (!buf)
		return aim_error("%s: out of memory", L->path);
	int rc = read_entry(L->za, L->path, idx, &st, buf);
	if (!rc)
		rc = aim_pickle_parse_state_dict(buf, st.size, L->path, ts);
	free(buf);
	return rc;
}

int aim_pth_load(const char *path, aim_record *r)
{
	int zerr = 0;
	zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
	if (!za)
		return open_error(path, zerr);
	loader L = {.za = za, .path = path};
	aim_pickle_tensors ts = {0};
	char *prefix = NULL;
	int n0 = r->n;
	int rc = find_prefix(za, path, &prefix);
	L.prefix = prefix;
	if (!rc)
		rc = read_byteorder(&L);
	if (!rc)
		rc = read_pickle(&L, &ts);
	if (!rc)
		rc = load_tensors(&L, &ts, r);
	if (rc) /* leave r as it was */
		aim_record_truncate(r, n0);
	aim_pickle_tensors_free(&ts);
	free(prefix);
	zip_discard(za);
	return rc;
}
