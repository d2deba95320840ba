/* PyTorch zip checkpoints: find PREFIX/data.pkl, describe its tensors with
 * the restricted pickle reader, then copy each tensor's elements out of its
 * storage file, checking every size against the archive first. */
#include "pth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "err.h"
#include "pickle.h"

#define MAX_PICKLE (1u << 30)

/* What the first bytes of a pre-1.6 torch.save file are: PROTO 2, then the
 * LONG1 magic number 0x1950a86a20f9469cfc6c. */
static const unsigned char legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
					     0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

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
		unsigned char head[sizeof legacy_magic];
		FILE *f = fopen(path, "rb");
		size_t n = f ? fread(head, 1, sizeof head, f) : 0;
		if (f)
			fclose(f);
		if (n == sizeof head && !memcmp(head, legacy_magic, sizeof head))
			return aim_error("%s: legacy PyTorch format; re-save with torch>=1.6", path);
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

/* Read bytes [off, off + len) of an entry into dst. */
static int read_range(zip_t *za, const char *path, zip_uint64_t idx, const zip_stat_t *st,
		      uint64_t off, uint64_t len, void *dst)
{
	zip_file_t *zf = zip_fopen_index(za, idx, 0);
	if (!zf)
		return aim_error("%s: %s: %s", path, st->name, zip_strerror(za));
	int rc = 0;
	if (off && st->comp_method == ZIP_CM_STORE) {
		if (zip_fseek(zf, (zip_int64_t)off, SEEK_SET) < 0)
			rc = aim_error("%s: %s: %s", path, st->name, zip_file_strerror(zf));
	} else {
		char scratch[1 << 16]; /* compressed: decompress and drop the head */
		while (off && !rc) {
			zip_int64_t want = off < sizeof scratch ? (zip_int64_t)off : (zip_int64_t)sizeof scratch;
			zip_int64_t got = zip_fread(zf, scratch, (zip_uint64_t)want);
			if (got <= 0)
				rc = aim_error("%s: %s: %s", path, st->name,
					       got < 0 ? zip_file_strerror(zf) : "truncated");
			else
				off -= (uint64_t)got;
		}
	}
	unsigned char *p = dst;
	while (len && !rc) {
		zip_int64_t got = zip_fread(zf, p, len);
		if (got <= 0)
			rc = aim_error("%s: %s: %s", path, st->name,
				       got < 0 ? zip_file_strerror(zf) : "truncated");
		else {
			p += got;
			len -= (uint64_t)got;
		}
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
	/* the last storage read whole, for views and tensors sharing it */
	char *cached_key;
	unsigned char *cached;
} loader;

static int load_tensor(loader *L, const aim_pickle_tensor *pt, aim_record *r)
{
	char rest[96];
	zip_uint64_t idx;
	zip_stat_t st;
	size_t esz = aim_dtype_size(pt->dtype);
	snprintf(rest, sizeof rest, "data/%s", pt->storage_key);
	if (locate(L->za, L->path, L->prefix, rest, &idx, &st))
		return AIM_ERR;
	uint64_t storage_bytes;
	if (__builtin_mul_overflow((uint64_t)pt->storage_numel, (uint64_t)esz, &storage_bytes) ||
	    storage_bytes != st.size)
		return aim_error("%s: tensor '%s': storage %s holds %llu bytes, but the pickle says "
				 "%lld elements of %zu bytes",
				 L->path, pt->name, st.name, (unsigned long long)st.size,
				 (long long)pt->storage_numel, esz);
	aim_tensor *t = aim_record_add(r, pt->name, pt->dtype, pt->ndim, pt->shape, NULL);
	if (!t)
		return aim_error_prefix("%s", L->path);
	if (t->nbytes == 0)
		return 0;
	if (is_contiguous(pt)) {
		if (read_range(L->za, L->path, idx, &st, (uint64_t)pt->offset * esz, t->nbytes, t->data))
			return AIM_ERR;
	} else {
		if (!L->cached_key || strcmp(L->cached_key, pt->storage_key)) {
			free(L->cached_key);
			free(L->cached);
			L->cached_key = NULL;
			L->cached = malloc(st.size);
			if (!L->cached)
				return aim_error("%s: out of memory for storage %s", L->path, st.name);
			if (read_range(L->za, L->path, idx, &st, 0, st.size, L->cached))
				return AIM_ERR;
			if (!(L->cached_key = strdup(pt->storage_key)))
				return aim_error("out of memory");
		}
		gather(t->data, L->cached + (size_t)pt->offset * esz, esz, pt->ndim, pt->shape,
		       pt->stride);
	}
	if (L->big_endian)
		swap_bytes(t->data, esz, t->nbytes / esz);
	return 0;
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
	if (st.size > 6 || read_range(L->za, L->path, idx, &st, 0, st.size, text))
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
	int rc = read_range(L->za, L->path, idx, &st, 0, st.size, buf);
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
	for (int i = 0; i < ts.n && !rc; i++)
		rc = load_tensor(&L, &ts.t[i], r);
	if (rc) /* leave r as it was */
		while (r->n > n0)
			aim_record_remove(r, r->t[r->n - 1].name);
	aim_pickle_tensors_free(&ts);
	free(L.cached_key);
	free(L.cached);
	free(prefix);
	zip_discard(za);
	return rc;
}
