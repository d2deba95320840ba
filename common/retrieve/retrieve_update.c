/* Updating a bank: rows added, replaced, removed, or made to follow a
 * listing of the image files (aim_bank_update in retrieve.h). The old
 * bank's vectors are copied, never recomputed: an index file is mapped, so
 * an update reads the old features once, from the page cache. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "retrieve.h"

/* One row of the result: where it comes from, its id and stamp. */
typedef struct {
	const aim_bank *src;
	int64_t row, id;
	aim_stamp st;
} pick;

/* name -> last row of that name */
static int name_map(aim_manifest *m, const aim_bank *b)
{
	aim_manifest_init(m);
	char buf[32];
	for (int64_t i = 0; b && i < b->n; i++)
		if (aim_manifest_add(m, aim_bank_name(b, i, buf, sizeof buf), &AIM_STAMP_UNKNOWN))
			return AIM_ERR;
	return 0;
}

static int removed(const aim_update *u, const char *name)
{
	return u->remove && aim_manifest_find(u->remove, name) >= 0;
}

static int choose_rows(const aim_bank *old, const aim_bank *added, const aim_update *u,
		       const aim_manifest *oldmap, const aim_manifest *addmap, pick *p, int64_t *np)
{
	int64_t n = 0;
	char buf[32];
	if (u->sync) {
		const aim_manifest *l = u->sync;
		for (int64_t k = 0; k < l->n; k++) {
			const char *name = l->e[k].name;
			if (aim_manifest_find(l, name) != k || removed(u, name))
				continue; /* a name listed twice counts once, at its last place */
			int64_t j = aim_manifest_find(addmap, name), i;
			aim_stamp sa = j >= 0 ? aim_bank_stamp(added, j) : AIM_STAMP_UNKNOWN;
			/* an added row brings its stamp when it has one (an index's) */
			if (j >= 0 && (sa.size < 0 || aim_stamp_same(&sa, &l->e[k].st)))
				p[n++] = (pick){added, j, k, sa.size < 0 ? l->e[k].st : sa};
			else if ((i = aim_manifest_find(oldmap, name)) >= 0) {
				aim_stamp st = aim_bank_stamp(old, i);
				if (aim_stamp_same(&st, &l->e[k].st))
					p[n++] = (pick){old, i, k, st};
			}
		}
	} else {
		for (int64_t i = 0; old && i < old->n; i++) {
			const char *name = aim_bank_name(old, i, buf, sizeof buf);
			if (!removed(u, name) && aim_manifest_find(addmap, name) < 0)
				p[n++] = (pick){old, i, old->id[i], aim_bank_stamp(old, i)};
		}
		for (int64_t j = 0; j < added->n; j++) {
			const char *name = aim_bank_name(added, j, buf, sizeof buf);
			if (aim_manifest_find(addmap, name) == j && !removed(u, name))
				p[n++] = (pick){added, j, added->id[j], aim_bank_stamp(added, j)};
		}
	}
	(void)oldmap;
	*np = n;
	return 0;
}

static int same_as_old(const aim_bank *old, const pick *p, int64_t n)
{
	if (!old || n != old->n)
		return 0;
	for (int64_t r = 0; r < n; r++) {
		aim_stamp st = aim_bank_stamp(old, r);
		if (p[r].src != old || p[r].row != r || p[r].id != old->id[r] ||
		    p[r].st.size != st.size || p[r].st.mtime_ns != st.mtime_ns ||
		    p[r].st.has_hash != st.has_hash ||
		    (st.has_hash && memcmp(p[r].st.sha256, st.sha256, 32)))
			return 0;
	}
	return 1;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The result's arrays from the picked rows. */
static int build(aim_bank *out, const aim_bank *old, const aim_bank *added, const pick *p,
		 int64_t n, int stamped)
{
	const aim_bank *first = old ? old : added;
	memset(out, 0, sizeof *out);
	out->n = n;
	out->dim = old ? old->dim : added->dim;
	out->pool = first->pool;
	out->normalized = first->normalized;
	out->base = old ? old->base : 0;
	out->source = strdup(first->source);
	out->classes = dup_or_null(added->classes ? added->classes : old ? old->classes : NULL);
	out->model = dup_or_null(old && old->model ? old->model : added->model);
	out->layers = dup_or_null(old && old->layers ? old->layers : added->layers);
	int labelled = (old && old->label) || added->label, hashed = 0;
	size_t names_len = 0;
	char buf[32];
	for (int64_t r = 0; r < n; r++) {
		hashed |= p[r].st.has_hash;
		names_len += strlen(aim_bank_name(p[r].src, p[r].row, buf, sizeof buf)) + 1;
	}
	size_t rows = (size_t)(n ? n : 1), D = (size_t)out->dim;
	out->own_vec = malloc(sizeof(float) * rows * (D ? D : 1));
	out->own_id = malloc(sizeof(int64_t) * rows);
	out->own_off = malloc(sizeof(int64_t) * rows);
	out->own_names = malloc(names_len ? names_len : 1);
	if (labelled)
		out->own_label = malloc(sizeof(int64_t) * rows);
	if (stamped) {
		out->own_fsize = malloc(sizeof(int64_t) * rows);
		out->own_fmtime = malloc(sizeof(int64_t) * rows);
	}
	if (hashed)
		out->own_fsha = calloc(rows, 32);
	if (!out->own_vec || !out->own_id || !out->own_off || !out->own_names ||
	    (labelled && !out->own_label) || (stamped && (!out->own_fsize || !out->own_fmtime)) ||
	    (hashed && !out->own_fsha)) {
		aim_bank_free(out);
		return aim_error("out of memory (an index of %" PRId64 " rows)", n);
	}
	size_t at = 0;
	for (int64_t r = 0; r < n; r++) {
		const aim_bank *b = p[r].src;
		int64_t i = p[r].row;
		memcpy(out->own_vec + (size_t)r * D, b->vec + (size_t)i * D, sizeof(float) * D);
		out->own_id[r] = p[r].id;
		if (labelled)
			out->own_label[r] = b->label ? b->label[i] : -1;
		const char *name = aim_bank_name(b, i, buf, sizeof buf);
		size_t l = strlen(name) + 1;
		memcpy(out->own_names + at, name, l);
		out->own_off[r] = (int64_t)at;
		at += l;
		if (stamped) {
			out->own_fsize[r] = p[r].st.size;
			out->own_fmtime[r] = p[r].st.mtime_ns;
		}
		if (hashed && p[r].st.has_hash)
			memcpy(out->own_fsha + 32 * r, p[r].st.sha256, 32);
	}
	aim_bank_own_views(out);
	return 0;
}

int aim_bank_update(aim_bank *out, const aim_bank *old, const aim_bank *added,
		    const aim_update *u, int *changed)
{
	if (added->n && !added->have_names)
		return aim_error("%s: the added features carry no names (aim.names); an index "
				 "is updated by name", added->source);
	if (old && added->n && old->dim != added->dim)
		return aim_error("%s: features of dimension %" PRId64 " cannot join the index %s of "
				 "dimension %" PRId64, added->source, added->dim, old->source, old->dim);
	if (old && old->model && added->model && strcmp(old->model, added->model))
		return aim_error("%s: features of model %s cannot join the index %s of model %s",
				 added->source, added->model, old->source, old->model);
	aim_manifest oldmap, addmap;
	pick *p = malloc(sizeof *p * (size_t)((old ? old->n : 0) + added->n +
					      (u->sync ? u->sync->n : 0) + 1));
	int rc = !p ? aim_error("out of memory") : 0;
	int64_t n = 0;
	if (!rc)
		rc = name_map(&oldmap, old);
	if (!rc)
		rc = name_map(&addmap, added);
	if (!rc)
		rc = choose_rows(old, added, u, &oldmap, &addmap, p, &n);
	if (!rc) {
		*changed = !same_as_old(old, p, n);
		rc = build(out, old, added, p, n, u->sync != NULL || (old && old->fsize));
	}
	aim_manifest_free(&oldmap);
	aim_manifest_free(&addmap);
	free(p);
	return rc;
}
