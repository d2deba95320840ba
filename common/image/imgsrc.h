/* Image sources: which images a run reads, their labels and ids, and the
 * order in which an epoch visits them.
 *
 * A listing is built from paths, in the order given:
 *  - a regular file is one image (its format is checked when decoded);
 *  - a tar shard (*.tar, *.tar.gz, *.tgz, *.tar.bz2, *.tar.xz, *.tar.zst)
 *    in the WebDataset layout: members sharing a key (the path up to the
 *    first dot of the file name) form a sample; its image is the first
 *    member with an image extension, its label the integer in KEY.cls
 *    (-1 without one); members that are not images are ignored;
 *  - a directory, walked exactly as torchvision's ImageFolder walks a
 *    class folder: every folder below it (symbolic links followed) in
 *    the sorted order of their paths, files in each sorted by name,
 *    keeping names that end (in any case) with .jpg .jpeg .png .ppm .bmp
 *    .pgm .tif .tiff .webp (IMG_EXTENSIONS).
 *  An ImageFolder root is a directory whose first-level subdirectories
 *  are the classes: sorted by name, label = index, the images of each
 *  class walked as above, classes one after another. Whether a directory
 *  is one is decided by aim_classes_mode.
 * An item's id is its 0-based position in the whole listing. */
#ifndef AIM_IMGSRC_H
#define AIM_IMGSRC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
	AIM_CLASSES_AUTO,   /* ImageFolder when a directory holds subdirectories
			       and no image files of its own */
	AIM_CLASSES_FOLDER, /* every directory is an ImageFolder root */
	AIM_CLASSES_NONE,   /* directories are plain trees; labels -1 */
} aim_classes_mode;

typedef struct {
	char *name;          /* path, or SHARD:MEMBER for a tar member */
	int shard;           /* index into shards for a tar member, else -1 */
	int64_t member;      /* entry ordinal inside the shard */
	int64_t label;       /* -1 unknown */
} aim_imgitem;

typedef struct {
	aim_imgitem *items;
	int64_t n, cap;
	char **classes;      /* ImageFolder class names (NULL if none) */
	int nclasses;
	char **shards;
	int nshards;
} aim_imglist;

void aim_imglist_init(aim_imglist *l);
void aim_imglist_free(aim_imglist *l);
/* Add one path (file, directory or tar shard). Directories and shards
 * that cannot be read are errors; files are checked when read. Two
 * ImageFolder roots must have the same classes. */
int aim_imglist_add(aim_imglist *l, const char *path, aim_classes_mode mode);
/* Add every non-empty line of fp as a path. */
int aim_imglist_add_lines(aim_imglist *l, FILE *fp, aim_classes_mode mode);
/* The class names as a JSON array (the aim.classes metadata), malloc'd;
 * NULL: out of memory. */
char *aim_imglist_classes_json(const aim_imglist *l);
/* 1 if the name ends with one of ImageFolder's extensions. */
int aim_is_image_name(const char *name);

/* One epoch's walk over the selected items of a listing.
 * Without shuffling: listing order. With shuffling: files and shards
 * are permuted (from seed and epoch), and when shards are present the
 * items pass through a shuffle buffer of shuffle_buffer samples, as
 * WebDataset does, since a shard can only be read in order. Tar members
 * are read here (sequentially); files are left for the caller to read,
 * so that reading can run in parallel. */
typedef struct aim_imgwalk aim_imgwalk;

typedef struct {
	int64_t item;     /* index into the listing */
	uint8_t *data;    /* tar member bytes (malloc'd; the caller frees), or NULL */
	size_t len;
} aim_imgnext;

/* selected[i] != 0 keeps item i (NULL keeps all). */
aim_imgwalk *aim_imgwalk_new(const aim_imglist *l, const unsigned char *selected, int shuffle,
			     uint64_t seed, int64_t epoch, int shuffle_buffer);
/* 1: an item in *out, 0: end of the epoch, AIM_ERR: a shard failed to
 * read (message names it; the walk goes on with the next shard). */
int aim_imgwalk_next(aim_imgwalk *w, aim_imgnext *out);
void aim_imgwalk_free(aim_imgwalk *w);

#endif
