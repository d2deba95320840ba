/* Manifests and TSV fields (format in manifest.h). */
#include "manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "sha256.h"

void aim_manifest_init(aim_manifest *m)
{
	memset(m, 0, sizeof *m);
}

void aim_manifest_free(aim_manifest *m)
{
	for (int64_t i = 0; i < m->n; i++)
		free(m->e[i].name);
	free(m->e);
	free(m->slot);
	memset(m, 0, sizeof *m);
}

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void slot_put(aim_manifest *m, int64_t idx)
{
	uint64_t mask = (uint64_t)m->nslot - 1;
	for (uint64_t h = hash_name(m->e[idx].name) & mask;; h = (h + 1) & mask) {
		int64_t at = m->slot[h];
		if (at < 0 || !strcmp(m->e[at].name, m->e[idx].name)) {
			m->slot[h] = idx; /* the later entry shadows */
			return;
		}
	}
}

int aim_manifest_add(aim_manifest *m, const char *name, const aim_stamp *st)
{
	if (m->n == m->cap) {
		int64_t cap = m->cap ? 2 * m->cap : 256;
		aim_manifest_entry *e = realloc(m->e, sizeof *e * (size_t)cap);
		if (!e)
			return aim_error("out of memory (manifest of %" PRId64 " entries)", m->n);
		m->e = e;
		m->cap = cap;
	}
	char *dup = strdup(name);
	if (!dup)
		return aim_error("out of memory");
	m->e[m->n] = (aim_manifest_entry){dup, *st};
	m->n++;
	if (2 * m->n > m->nslot) { /* rehash at half load */
		int64_t ns = m->nslot ? 2 * m->nslot : 512;
		while (2 * m->n > ns)
			ns *= 2;
		int64_t *s = malloc(sizeof *s * (size_t)ns);
		if (!s)
			return aim_error("out of memory");
		free(m->slot);
		m->slot = s;
		m->nslot = ns;
		for (int64_t i = 0; i < ns; i++)
			s[i] = -1;
		for (int64_t i = 0; i < m->n; i++)
			slot_put(m, i);
	} else {
		slot_put(m, m->n - 1);
	}
	return 0;
}

int64_t aim_manifest_find(const aim_manifest *m, const char *name)
{
	if (!m->nslot)
		return -1;
	uint64_t mask = (uint64_t)m->nslot - 1;
	for (uint64_t h = hash_name(name) & mask;; h = (h + 1) & mask) {
		int64_t at = m->slot[h];
		if (at < 0)
			return -1;
		if (!strcmp(m->e[at].name, name))
			return at;
	}
}

/* Undo the escapes of one field in place; 0, or -1 on a bad escape. */
static int unescape(char *s)
{
	char *d = s;
	for (; *s; s++) {
		if (*s != '\\') {
			*d++ = *s;
			continue;
		}
		switch (*++s) {
		case '\\': *d++ = '\\'; break;
		case 't': *d++ = '\t'; break;
		case 'n': *d++ = '\n'; break;
		case 'r': *d++ = '\r'; break;
		default: return -1;
		}
	}
	*d = 0;
	return 0;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int parse_stamp(char *size, char *mtime, char *hash, aim_stamp *st)
{
	*st = AIM_STAMP_UNKNOWN;
	char *end;
	if (size && strcmp(size, "-")) {
		errno = 0;
		long long v = strtoll(size, &end, 10);
		if (errno || end == size || *end || v < 0)
			return -1;
		st->size = v;
	}
	if (mtime && strcmp(mtime, "-")) {
		errno = 0;
		long long sec = strtoll(mtime, &end, 10);
		if (errno || end == mtime || (*end && *end != '.'))
			return -1;
		long long ns = 0;
		if (*end == '.') {
			const char *f = end + 1;
			int digits = 0;
			for (; *f >= '0' && *f <= '9' && digits < 9; f++, digits++)
				ns = ns * 10 + (*f - '0');
			if (*f || digits == 0)
				return -1;
			for (; digits < 9; digits++)
				ns *= 10;
		}
		if (sec > INT64_MAX / 1000000000 - 1 || sec < INT64_MIN / 1000000000 + 1)
			return -1;
		st->mtime_ns = sec * 1000000000 + ns; /* as printed: floor seconds, then ns */
	}
	if (hash && strcmp(hash, "-")) {
		if (strlen(hash) != 64)
			return -1;
		for (int i = 0; i < 32; i++) {
			int a = hexval(hash[2 * i]), b = hexval(hash[2 * i + 1]);
			if (a < 0 || b < 0)
				return -1;
			st->sha256[i] = (uint8_t)(a << 4 | b);
		}
		st->has_hash = 1;
	}
	return 0;
}

int aim_manifest_read(aim_manifest *m, const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return aim_error("%s: %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int64_t lineno = 0;
	int rc = 0;
	while ((len = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		if (len && line[len - 1] == '\n')
			line[--len] = 0;
		if (len && line[len - 1] == '\r')
			line[--len] = 0;
		if (!len)
			continue;
		char *f[5] = {line};
		int nf = 1;
		for (char *p = line; *p; p++)
			if (*p == '\t') {
				*p = 0;
				if (nf == 5)
					break;
				f[nf++] = p + 1;
			}
		aim_stamp st;
		/* Two fields is an error file (NAME, REASON): a name with no stamp. */
		int stamped = nf >= 3;
		if (unescape(f[0]) || !*f[0] ||
		    parse_stamp(stamped ? f[1] : NULL, stamped ? f[2] : NULL, nf >= 4 ? f[3] : NULL, &st)) {
			rc = aim_error("%s: line %" PRId64 ": expected NAME<TAB>SIZE<TAB>MTIME[<TAB>SHA256]",
				       path, lineno);
			break;
		}
		if ((rc = aim_manifest_add(m, f[0], &st)))
			break;
	}
	if (!rc && ferror(fp))
		rc = aim_error("%s: %s", path, strerror(errno));
	free(line);
	fclose(fp);
	return rc;
}

int aim_stamp_file(const char *path, int hash, aim_stamp *st)
{
	struct stat s;
	*st = AIM_STAMP_UNKNOWN;
	if (stat(path, &s) < 0)
		return aim_error("%s: %s", path, strerror(errno));
	st->size = (int64_t)s.st_size;
	st->mtime_ns = (int64_t)s.st_mtim.tv_sec * 1000000000 + s.st_mtim.tv_nsec;
	if (hash) {
		if (aim_sha256_file(path, st->sha256))
			return AIM_ERR;
		st->has_hash = 1;
	}
	return 0;
}

int aim_stamp_same(const aim_stamp *recorded, const aim_stamp *current)
{
	const aim_stamp *a = recorded, *b = current;
	if (a->size < 0 || b->size < 0 || a->mtime_ns == INT64_MIN || b->mtime_ns == INT64_MIN)
		return 0;
	if (a->size != b->size || a->mtime_ns != b->mtime_ns)
		return 0;
	if (b->has_hash) /* contents asked for: a stamp recorded without a hash is stale */
		return a->has_hash && !memcmp(a->sha256, b->sha256, 32);
	return 1;
}

void aim_tsv_put(FILE *fp, const char *s)
{
	for (; *s; s++)
		switch (*s) {
		case '\\': fputs("\\\\", fp); break;
		case '\t': fputs("\\t", fp); break;
		case '\n': fputs("\\n", fp); break;
		case '\r': fputs("\\r", fp); break;
		default: fputc(*s, fp);
		}
}

void aim_manifest_put(FILE *fp, const char *name, const aim_stamp *st, int with_hash)
{
	aim_tsv_put(fp, name);
	if (st->size >= 0)
		fprintf(fp, "\t%" PRId64, st->size);
	else
		fputs("\t-", fp);
	if (st->mtime_ns != INT64_MIN) {
		int64_t sec = st->mtime_ns / 1000000000, ns = st->mtime_ns % 1000000000;
		if (ns < 0)
			sec--, ns += 1000000000;
		fprintf(fp, "\t%" PRId64 ".%09" PRId64, sec, ns);
	} else {
		fputs("\t-", fp);
	}
	if (with_hash) {
		fputc('\t', fp);
		if (st->has_hash)
			for (int i = 0; i < 32; i++)
				fprintf(fp, "%02x", st->sha256[i]);
		else
			fputc('-', fp);
	}
	fputc('\n', fp);
}
