/* Listing images from files, directories, ImageFolder roots and WebDataset
 * tar shards, and walking them epoch by epoch (see imgsrc.h). */
#include "imgsrc.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "err.h"

/* torchvision.datasets.folder.IMG_EXTENSIONS */
static const char *const img_ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp",
				      ".pgm", ".tif", ".tiff", ".webp"};

int aim_is_image_name(const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof img_ext / sizeof *img_ext; i++) {
		size_t m = strlen(img_ext[i]);
		if (n >= m && !strcasecmp(name + n - m, img_ext[i]))
			return 1;
	}
	return 0;
}

static int is_tar_name(const char *name)
{
	static const char *const ext[] = {".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz",
					  ".tar.zst"};
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
		size_t m = strlen(ext[i]);
		if (n >= m && !strcasecmp(name + n - m, ext[i]))
			return 1;
	}
	return 0;
}

void aim_imglist_init(aim_imglist *l)
{
	memset(l, 0, sizeof *l);
}

void aim_imglist_free(aim_imglist *l)
{
	for (int64_t i = 0; i < l->n; i++)
		free(l->items[i].name);
	free(l->items);
	for (int i = 0; i < l->nclasses; i++)
		free(l->classes[i]);
	free(l->classes);
	for (int i = 0; i < l->nshards; i++)
		free(l->shards[i]);
	free(l->shards);
	aim_imglist_init(l);
}

static int push_item(aim_imglist *l, char *name, int shard, int64_t member, int64_t label)
{
	if (!name)
		return aim_error("out of memory");
	if (l->n == l->cap) {
		int64_t cap = l->cap ? 2 * l->cap : 256;
		aim_imgitem *p = realloc(l->items, sizeof *p * cap);
		if (!p) {
			free(name);
			return aim_error("out of memory");
		}
		l->items = p;
		l->cap = cap;
	}
	l->items[l->n++] = (aim_imgitem){name, shard, member, label};
	return AIM_OK;
}

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *s = malloc(a + b + 2);
	if (!s)
		return NULL;
	memcpy(s, dir, a);
	size_t k = a;
	if (a && dir[a - 1] != '/')
		s[k++] = '/';
	memcpy(s + k, name, b + 1);
	return s;
}

/* ---- directories ------------------------------------------------------------ */

typedef struct {
	char **v;
	size_t n, cap;
} strvec;

static int strvec_push(strvec *s, char *x)
{
	if (!x)
		return aim_error("out of memory");
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		char **p = realloc(s->v, sizeof *p * cap);
		if (!p) {
			free(x);
			return aim_error("out of memory");
		}
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n++] = x;
	return AIM_OK;
}

static void strvec_free(strvec *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Entries of one directory split into subdirectories and other entries
 * (os.scandir's is_dir(), which follows links), names only. */
static int list_dir(const char *dir, strvec *dirs, strvec *files)
{
	DIR *d = opendir(dir);
	if (!d)
		return aim_error("%s: %s", dir, strerror(errno));
	struct dirent *e;
	int rc = AIM_OK;
	while (rc == AIM_OK && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		/* the entry type saves a stat() per file in big trees; links and
		 * unknown types are resolved as is_dir() does, following links */
		int isdir = e->d_type == DT_DIR;
		if (e->d_type == DT_LNK || e->d_type == DT_UNKNOWN) {
			char *full = join(dir, e->d_name);
			struct stat st;
			isdir = full && stat(full, &st) == 0 && S_ISDIR(st.st_mode);
			free(full);
		}
		strvec *to = isdir ? dirs : files;
		if (to)
			rc = strvec_push(to, strdup(e->d_name));
	}
	closedir(d);
	return rc;
}

/* All folders below root, root included, following links (os.walk with
 * followlinks=True), to a bounded depth against link cycles. */
static int collect_dirs(const char *root, int depth, strvec *out)
{
	if (depth > 64)
		return aim_error("%s: directories nested too deeply (a link cycle?)", root);
	if (strvec_push(out, strdup(root)) < 0)
		return AIM_ERR;
	strvec sub = {0};
	int rc = list_dir(root, &sub, NULL);
	for (size_t i = 0; rc == AIM_OK && i < sub.n; i++) {
		char *p = join(root, sub.v[i]);
		rc = p ? collect_dirs(p, depth + 1, out) : aim_error("out of memory");
		free(p);
	}
	strvec_free(&sub);
	return rc;
}

/* torchvision's make_dataset for one class folder:
 *   for root, _, fnames in sorted(os.walk(dir, followlinks=True)):
 *       for fname in sorted(fnames): keep if it has an image extension */
static int add_tree(aim_imglist *l, const char *dir, int64_t label)
{
	strvec dirs = {0};
	int rc = collect_dirs(dir, 0, &dirs);
	if (rc == AIM_OK && dirs.n > 1)
		qsort(dirs.v, dirs.n, sizeof *dirs.v, cmp_str);
	for (size_t i = 0; rc == AIM_OK && i < dirs.n; i++) {
		strvec sub = {0}, files = {0};
		rc = list_dir(dirs.v[i], &sub, &files);
		if (rc == AIM_OK && files.n > 1)
			qsort(files.v, files.n, sizeof *files.v, cmp_str);
		for (size_t j = 0; rc == AIM_OK && j < files.n; j++)
			if (aim_is_image_name(files.v[j]))
				rc = push_item(l, join(dirs.v[i], files.v[j]), -1, -1, label);
		strvec_free(&sub);
		strvec_free(&files);
	}
	strvec_free(&dirs);
	return rc;
}

static int add_imagefolder(aim_imglist *l, const char *root, strvec *classes)
{
	if (classes->n == 0)
		return aim_error("%s: no class folders found (ImageFolder layout)", root);
	if (classes->n > 1)
		qsort(classes->v, classes->n, sizeof *classes->v, cmp_str);
	if (l->classes) {
		int same = (size_t)l->nclasses == classes->n;
		for (size_t i = 0; same && i < classes->n; i++)
			same = !strcmp(l->classes[i], classes->v[i]);
		if (!same)
			return aim_error("%s: its classes differ from those of an earlier "
					 "ImageFolder root", root);
	} else {
		l->classes = malloc(sizeof(char *) * classes->n);
		if (!l->classes)
			return aim_error("out of memory");
		for (size_t i = 0; i < classes->n; i++) {
			l->classes[i] = classes->v[i];
			classes->v[i] = NULL;
		}
		l->nclasses = (int)classes->n; /* the names now belong to the list */
	}
	for (int c = 0; c < l->nclasses; c++) {
		char *dir = join(root, l->classes[c]);
		if (!dir)
			return aim_error("out of memory");
		int rc = add_tree(l, dir, c);
		free(dir);
		if (rc < 0)
			return rc;
	}
	return AIM_OK;
}

static int add_directory(aim_imglist *l, const char *dir, aim_classes_mode mode)
{
	strvec sub = {0}, files = {0};
	int rc = list_dir(dir, &sub, &files);
	if (rc == AIM_OK) {
		int folder = mode == AIM_CLASSES_FOLDER;
		if (mode == AIM_CLASSES_AUTO) {
			int own_images = 0;
			for (size_t i = 0; i < files.n; i++)
				own_images |= aim_is_image_name(files.v[i]);
			folder = sub.n > 0 && !own_images;
		}
		rc = folder ? add_imagefolder(l, dir, &sub) : add_tree(l, dir, -1);
	}
	strvec_free(&sub);
	strvec_free(&files);
	return rc;
}

/* ---- tar shards (WebDataset) ------------------------------------------------- */

static struct archive *open_shard(const char *path)
{
	struct archive *a = archive_read_new();
	if (!a) {
		aim_error("%s: cannot start libarchive", path);
		return NULL;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_filename(a, path, 1 << 20) != ARCHIVE_OK) {
		aim_error("%s: %s", path, archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* WebDataset's split of a member path: key = directory + file name up to
 * its first dot; extension = the rest. */
static const char *split_key(const char *path, size_t *keylen)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *dot = strchr(base, '.');
	if (!dot || dot == base)
		return NULL;
	*keylen = (size_t)(dot - path);
	return dot + 1;
}

static int ext_is_image(const char *ext)
{
	char buf[16];
	if (strlen(ext) + 2 > sizeof buf)
		return 0;
	buf[0] = '.';
	strcpy(buf + 1, ext);
	return aim_is_image_name(buf);
}

static int read_small_member(struct archive *a, char *buf, size_t cap)
{
	la_ssize_t n = archive_read_data(a, buf, cap - 1);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

static int add_shard(aim_imglist *l, const char *path)
{
	char **sh = realloc(l->shards, sizeof(char *) * (l->nshards + 1));
	if (!sh)
		return aim_error("out of memory");
	l->shards = sh;
	if (!(l->shards[l->nshards] = strdup(path)))
		return aim_error("out of memory");
	int shard = l->nshards++;

	struct archive *a = open_shard(path);
	if (!a)
		return AIM_ERR;
	struct archive_entry *e;
	char *key = NULL;        /* current sample's key */
	int64_t item = -1;       /* its image item, if seen */
	int64_t label = -1;      /* its label, if seen */
	int64_t ordinal = 0;
	int rc = AIM_OK, r;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		int64_t ord = ordinal++;
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		const char *name = archive_entry_pathname(e);
		size_t klen;
		const char *ext = name ? split_key(name, &klen) : NULL;
		if (!ext)
			continue;
		if (!key || strlen(key) != klen || strncmp(key, name, klen)) {
			free(key);
			key = strndup(name, klen);
			item = -1;
			label = -1;
			if (!key) {
				rc = aim_error("out of memory");
				break;
			}
		}
		if (!strcasecmp(ext, "cls")) {
			char buf[64], *end;
			if (read_small_member(a, buf, sizeof buf) < 0) {
				rc = aim_error("%s: %s: %s", path, name, archive_error_string(a));
				break;
			}
			long long v = strtoll(buf, &end, 10);
			while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')
				end++;
			if (end == buf || *end) {
				rc = aim_error("%s: %s: not an integer class", path, name);
				break;
			}
			label = v;
			if (item >= 0)
				l->items[item].label = label;
		} else if (ext_is_image(ext) && item < 0) {
			size_t n = strlen(path) + strlen(name) + 2;
			char *full = malloc(n);
			if (full)
				snprintf(full, n, "%s:%s", path, name);
			if ((rc = push_item(l, full, shard, ord, label)) < 0)
				break;
			item = l->n - 1;
		}
	}
	if (rc == AIM_OK && r != ARCHIVE_EOF)
		rc = aim_error("%s: %s", path, archive_error_string(a));
	free(key);
	archive_read_free(a);
	return rc;
}

/* ---- building the listing ------------------------------------------------- */

int aim_imglist_add(aim_imglist *l, const char *path, aim_classes_mode mode)
{
	struct stat st;
	/* drop trailing slashes so names read as os.path.join makes them */
	char *p = strdup(path);
	if (!p)
		return aim_error("out of memory");
	for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--)
		p[n - 1] = 0;
	int rc;
	if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
		rc = add_directory(l, p, mode);
	else if (stat(p, &st) == 0 && is_tar_name(p))
		rc = add_shard(l, p);
	else
		rc = push_item(l, strdup(p), -1, -1, -1);
	free(p);
	return rc;
}

int aim_imglist_add_lines(aim_imglist *l, FILE *fp, aim_classes_mode mode)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = AIM_OK;
	while (rc == AIM_OK && (n = getline(&line, &cap, fp)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		if (n > 0)
			rc = aim_imglist_add(l, line, mode);
	}
	if (rc == AIM_OK && ferror(fp))
		rc = aim_error("reading the list of paths: %s", strerror(errno));
	free(line);
	return rc;
}

/* ---- walking an epoch ----------------------------------------------------- */

typedef struct {
	int64_t first, count; /* a file: one item; a shard: its items */
	int shard;
} unit;

struct aim_imgwalk {
	const aim_imglist *l;
	const unsigned char *selected;
	unit *units;
	int64_t nunits, next_unit;
	/* the shard being read */
	struct archive *a;
	int64_t shard_pos, shard_end, ordinal;
	/* shuffle buffer */
	aim_imgnext *buf;
	int bufcap, nbuf, draining;
	uint64_t key, counter;
};

static uint64_t walk_mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static uint64_t walk_below(aim_imgwalk *w, uint64_t n)
{
	uint64_t r = walk_mix(w->key ^ walk_mix(w->counter++));
	return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

aim_imgwalk *aim_imgwalk_new(const aim_imglist *l, const unsigned char *selected, int shuffle,
			     uint64_t seed, int64_t epoch, int shuffle_buffer)
{
	aim_imgwalk *w = calloc(1, sizeof *w);
	if (!w) {
		aim_error("out of memory");
		return NULL;
	}
	w->l = l;
	w->selected = selected;
	w->units = malloc(sizeof(unit) * (l->n ? l->n : 1));
	if (!w->units) {
		free(w);
		aim_error("out of memory");
		return NULL;
	}
	for (int64_t i = 0; i < l->n;) {
		int64_t j = i + 1;
		if (l->items[i].shard >= 0)
			while (j < l->n && l->items[j].shard == l->items[i].shard)
				j++;
		w->units[w->nunits++] = (unit){i, j - i, l->items[i].shard};
		i = j;
	}
	w->key = walk_mix(walk_mix(seed ^ 0x5348554646ull) ^ (uint64_t)epoch);
	if (shuffle) {
		for (int64_t i = w->nunits - 1; i > 0; i--) {
			int64_t j = (int64_t)walk_below(w, (uint64_t)i + 1);
			unit t = w->units[i];
			w->units[i] = w->units[j];
			w->units[j] = t;
		}
		int has_shards = 0;
		for (int64_t i = 0; i < w->nunits; i++)
			has_shards |= w->units[i].shard >= 0;
		if (has_shards && shuffle_buffer > 1) {
			w->bufcap = shuffle_buffer;
			w->buf = malloc(sizeof *w->buf * w->bufcap);
			if (!w->buf) {
				aim_imgwalk_free(w);
				aim_error("out of memory");
				return NULL;
			}
		}
	}
	return w;
}

static void close_shard(aim_imgwalk *w)
{
	if (w->a)
		archive_read_free(w->a);
	w->a = NULL;
}

/* The next selected item in unit order, reading tar members. */
static int walk_plain(aim_imgwalk *w, aim_imgnext *out)
{
	const aim_imglist *l = w->l;
	for (;;) {
		if (w->a) {
			/* advance inside the shard to the next selected item */
			while (w->shard_pos < w->shard_end && w->selected &&
			       !w->selected[w->shard_pos])
				w->shard_pos++;
			if (w->shard_pos == w->shard_end) {
				close_shard(w);
				continue;
			}
			const aim_imgitem *it = &l->items[w->shard_pos];
			struct archive_entry *e;
			int r = ARCHIVE_OK;
			while (w->ordinal <= it->member &&
			       (r = archive_read_next_header(w->a, &e)) == ARCHIVE_OK)
				w->ordinal++;
			if (r != ARCHIVE_OK || w->ordinal != it->member + 1) {
				aim_error("%s: %s", l->shards[it->shard],
					  r == ARCHIVE_EOF ? "shard changed while reading"
							   : archive_error_string(w->a));
				close_shard(w);
				return AIM_ERR;
			}
			int64_t size = archive_entry_size(e);
			if (size < 0 || size > ((int64_t)1 << 32)) {
				aim_error("%s: bad member size", it->name);
				close_shard(w);
				return AIM_ERR;
			}
			uint8_t *data = malloc(size ? (size_t)size : 1);
			if (!data) {
				close_shard(w);
				return aim_error("out of memory");
			}
			la_ssize_t got = size ? archive_read_data(w->a, data, (size_t)size) : 0;
			if (got != size) {
				free(data);
				aim_error("%s: %s", it->name,
					  got < 0 ? archive_error_string(w->a) : "member is truncated");
				close_shard(w);
				return AIM_ERR;
			}
			out->item = w->shard_pos++;
			out->data = data;
			out->len = (size_t)size;
			return 1;
		}
		if (w->next_unit == w->nunits)
			return 0;
		unit *u = &w->units[w->next_unit++];
		if (u->shard < 0) {
			if (w->selected && !w->selected[u->first])
				continue;
			out->item = u->first;
			out->data = NULL;
			out->len = 0;
			return 1;
		}
		w->a = open_shard(l->shards[u->shard]);
		if (!w->a)
			return AIM_ERR;
		w->shard_pos = u->first;
		w->shard_end = u->first + u->count;
		w->ordinal = 0;
	}
}

int aim_imgwalk_next(aim_imgwalk *w, aim_imgnext *out)
{
	if (!w->buf)
		return walk_plain(w, out);
	/* shuffle buffer: fill, then emit a random element and refill its slot */
	while (!w->draining && w->nbuf < w->bufcap) {
		int rc = walk_plain(w, &w->buf[w->nbuf]);
		if (rc < 0)
			return rc;
		if (rc == 0)
			w->draining = 1;
		else
			w->nbuf++;
	}
	if (w->nbuf == 0)
		return 0;
	int j = (int)walk_below(w, (uint64_t)w->nbuf);
	*out = w->buf[j];
	w->buf[j] = w->buf[--w->nbuf];
	return 1;
}

void aim_imgwalk_free(aim_imgwalk *w)
{
	if (!w)
		return;
	close_shard(w);
	for (int i = 0; i < w->nbuf; i++)
		free(w->buf[i].data);
	free(w->buf);
	free(w->units);
	free(w);
}

char *aim_imglist_classes_json(const aim_imglist *l)
{
	json_t *a = json_array();
	for (int i = 0; a && i < l->nclasses; i++)
		json_array_append_new(a, json_string(l->classes[i]));
	char *s = a ? json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(a);
	return s;
}
