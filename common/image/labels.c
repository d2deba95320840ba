/* aim-patchify --labels: see labels.h. */
#include "labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

typedef struct {
	char *name, *label;
	long line;
} entry;

typedef struct {
	char **v;
	int n, cap;
} strings;

static int push(strings *s, char *str)
{
	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 64;
		char **v = realloc(s->v, sizeof *v * (size_t)cap);
		if (!v)
			return aim_error("out of memory");
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = str;
	return AIM_OK;
}

static void strings_free(strings *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* The words of a line: up to `max` of them, in place. */
static int split(char *line, char **w, int max)
{
	int n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " \t\r\n", &save); t && n < max; t = strtok_r(NULL, " \t\r\n", &save))
		w[n++] = t;
	return n;
}

static int read_classes(const char *path, strings *classes)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return aim_error("%s: cannot open the classes file", path);
	char *line = NULL;
	size_t cap = 0;
	long no = 0;
	int rc = AIM_OK;
	while (rc == AIM_OK && getline(&line, &cap, f) >= 0) {
		char *w[1];
		no++;
		if (line[0] == '#' || split(line, w, 1) == 0)
			continue;
		char *s = strdup(w[0]);
		if (!s || push(classes, s) < 0) {
			free(s);
			rc = aim_error("out of memory");
		}
	}
	free(line);
	if (ferror(f) && rc == AIM_OK)
		rc = aim_error("%s: read error", path);
	fclose(f);
	if (rc == AIM_OK && classes->n == 0)
		rc = aim_error("%s: no class names", path);
	/* a name twice would make its index ambiguous */
	char **sorted = rc == AIM_OK ? malloc(sizeof *sorted * (size_t)classes->n) : NULL;
	if (rc == AIM_OK && !sorted)
		rc = aim_error("out of memory");
	if (sorted) {
		memcpy(sorted, classes->v, sizeof *sorted * (size_t)classes->n);
		qsort(sorted, (size_t)classes->n, sizeof *sorted, cmp_str);
		for (int i = 1; i < classes->n && rc == AIM_OK; i++)
			if (!strcmp(sorted[i], sorted[i - 1]))
				rc = aim_error("%s: class '%s' is given twice", path, sorted[i]);
		free(sorted);
	}
	return rc;
}

static int find_class(const strings *classes, const char **sorted_idx_names, const int *sorted_idx,
		      const char *name)
{
	int lo = 0, hi = classes->n - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2, c = strcmp(name, sorted_idx_names[mid]);
		if (!c)
			return sorted_idx[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return -1;
}

/* Class indices by their names (qsort_r's context: the names). */
static int cmp_idx(const void *a, const void *b, void *names)
{
	char **v = names;
	return strcmp(v[*(const int *)a], v[*(const int *)b]);
}

static const entry *lookup(const entry *e, size_t n, const char *name)
{
	entry key = {(char *)name, NULL, 0};
	return bsearch(&key, e, n, sizeof *e, cmp_entry);
}

int aim_imglist_apply_labels(aim_imglist *l, const char *labels_path, const char *classes_path)
{
	strings classes = {0};
	entry *e = NULL;
	size_t n = 0, cap = 0;
	char *line = NULL;
	size_t lcap = 0;
	int *label = NULL, *idx = NULL;
	const char **names = NULL;
	int rc = AIM_OK;
	if (classes_path && read_classes(classes_path, &classes) < 0) {
		strings_free(&classes);
		return AIM_ERR;
	}
	FILE *f = fopen(labels_path, "r");
	if (!f) {
		strings_free(&classes);
		return aim_error("%s: cannot open the labels file", labels_path);
	}
	long no = 0;
	while (rc == AIM_OK && getline(&line, &lcap, f) >= 0) {
		char *w[3];
		no++;
		if (line[0] == '#')
			continue;
		int k = split(line, w, 3);
		if (k == 0)
			continue;
		if (k != 2) {
			rc = aim_error("%s:%ld: expected NAME LABEL", labels_path, no);
			break;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			entry *ne = realloc(e, sizeof *e * cap);
			if (!ne) {
				rc = aim_error("out of memory");
				break;
			}
			e = ne;
		}
		e[n].name = strdup(w[0]);
		e[n].label = strdup(w[1]);
		e[n].line = no;
		n++;
		if (!e[n - 1].name || !e[n - 1].label)
			rc = aim_error("out of memory");
	}
	free(line);
	if (rc == AIM_OK && ferror(f))
		rc = aim_error("%s: read error", labels_path);
	fclose(f);
	if (rc == AIM_OK && n == 0)
		rc = aim_error("%s: no labels", labels_path);
	if (rc == AIM_OK) {
		qsort(e, n, sizeof *e, cmp_entry);
		for (size_t i = 1; i < n && rc == AIM_OK; i++)
			if (!strcmp(e[i].name, e[i - 1].name))
				rc = aim_error("%s:%ld: '%s' is labelled twice (line %ld too)", labels_path,
					       e[i].line > e[i - 1].line ? e[i].line : e[i - 1].line, e[i].name,
					       e[i].line > e[i - 1].line ? e[i - 1].line : e[i].line);
	}
	/* Without a classes file, the classes are the sorted distinct names. */
	if (rc == AIM_OK && !classes_path) {
		char **all = malloc(sizeof *all * n);
		size_t m = 0;
		if (!all)
			rc = aim_error("out of memory");
		for (size_t i = 0; all && i < n; i++)
			if (!all_digits(e[i].label))
				all[m++] = e[i].label;
		if (all) {
			qsort(all, m, sizeof *all, cmp_str);
			for (size_t i = 0; i < m && rc == AIM_OK; i++)
				if (i == 0 || strcmp(all[i], all[i - 1])) {
					char *s = strdup(all[i]);
					if (!s || push(&classes, s) < 0) {
						free(s);
						rc = aim_error("out of memory");
					}
				}
			free(all);
		}
	}
	/* Each line's label as an index. */
	if (rc == AIM_OK) {
		label = malloc(sizeof *label * n);
		idx = malloc(sizeof *idx * (size_t)(classes.n + 1));
		names = malloc(sizeof *names * (size_t)(classes.n + 1));
		if (!label || !idx || !names)
			rc = aim_error("out of memory");
	}
	if (rc == AIM_OK) {
		for (int i = 0; i < classes.n; i++)
			idx[i] = i;
		qsort_r(idx, (size_t)classes.n, sizeof *idx, cmp_idx, classes.v);
		for (int i = 0; i < classes.n; i++)
			names[i] = classes.v[idx[i]];
		for (size_t i = 0; i < n && rc == AIM_OK; i++) {
			int c = find_class(&classes, names, idx, e[i].label);
			if (c < 0 && all_digits(e[i].label)) {
				long long v = strlen(e[i].label) > 9 ? -1 : atoll(e[i].label);
				if (v < 0 || (classes.n && v >= classes.n))
					rc = aim_error("%s:%ld: class index %s is past the %d classes", labels_path,
						       e[i].line, e[i].label, classes.n);
				c = (int)v;
			} else if (c < 0) {
				rc = aim_error("%s:%ld: unknown class '%s' (not in %s)", labels_path, e[i].line,
					       e[i].label, classes_path);
			}
			label[i] = c;
		}
	}
	/* Every listed image gets its label. */
	for (int64_t i = 0; rc == AIM_OK && i < l->n; i++) {
		const char *name = l->items[i].name, *base = strrchr(name, '/');
		const entry *hit = lookup(e, n, name);
		if (!hit && base)
			hit = lookup(e, n, base + 1);
		if (!hit)
			rc = aim_error("%s: no label for %s", labels_path, name);
		else
			l->items[i].label = label[hit - e];
	}
	if (rc == AIM_OK) {
		for (int i = 0; i < l->nclasses; i++)
			free(l->classes[i]);
		free(l->classes);
		l->classes = classes.n ? classes.v : NULL;
		l->nclasses = classes.n;
		if (!classes.n)
			free(classes.v);
		classes.v = NULL;
		classes.n = 0;
	}
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].label);
	}
	free(e);
	free(label);
	free(idx);
	free(names);
	strings_free(&classes);
	return rc;
}
