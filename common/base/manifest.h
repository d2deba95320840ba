/* Manifests: what a run has seen of its input files, as TSV lines
 *
 *     NAME <TAB> SIZE <TAB> MTIME [<TAB> SHA256]
 *
 * SIZE in bytes, MTIME the modification time as SECONDS.NANOSECONDS since
 * the epoch, SHA256 the file's digest in hex (as sha256sum prints it)
 * when content hashes were asked for; "-" marks a value not known. A
 * manifest is what `aim-patchify --list` prints of a listing, what
 * `aim-retrieve --list` prints of an index, what `aim-patchify
 * --skip-done` and `aim-retrieve --sync` read. Error files (--errors) are
 * TSV too: NAME <TAB> REASON.
 *
 * Fields are escaped so that any name fits on one line: backslash, tab,
 * newline and carriage return are written as \\ \t \n \r. */
#ifndef AIM_MANIFEST_H
#define AIM_MANIFEST_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
	int64_t size;     /* bytes, -1 unknown */
	int64_t mtime_ns; /* nanoseconds since the epoch, INT64_MIN unknown */
	int has_hash;
	uint8_t sha256[32];
} aim_stamp;

#define AIM_STAMP_UNKNOWN ((aim_stamp){-1, INT64_MIN, 0, {0}})

typedef struct {
	char *name;
	aim_stamp st;
} aim_manifest_entry;

typedef struct {
	aim_manifest_entry *e;
	int64_t n, cap;
	int64_t *slot; /* open-addressing table of entry indices, -1 empty */
	int64_t nslot;
} aim_manifest;

void aim_manifest_init(aim_manifest *m);
void aim_manifest_free(aim_manifest *m);
/* Append an entry (a later entry of the same name shadows an earlier one
 * in lookups). Returns 0 or AIM_ERR. */
int aim_manifest_add(aim_manifest *m, const char *name, const aim_stamp *st);
/* Index of the last entry named `name`, or -1. */
int64_t aim_manifest_find(const aim_manifest *m, const char *name);
/* Read a manifest; a line with only a name (a plain list of names, or an
 * error file's first column) has unknown stamps. Errors name the file and
 * the line. */
int aim_manifest_read(aim_manifest *m, const char *path);

/* Stamp of a file on disk: size and mtime from stat, and the SHA-256 of
 * its content when hash is set. Returns 0 or AIM_ERR naming the file. */
int aim_stamp_file(const char *path, int hash, aim_stamp *st);
/* 1 when a file recorded with stamp `recorded` is unchanged now that it
 * has stamp `current`: sizes and mtimes known and equal, and, when the
 * current stamp has a hash (contents were asked for), the recorded one
 * has the same hash. The one rule aim-patchify --skip-done and
 * aim-retrieve --sync share. */
int aim_stamp_same(const aim_stamp *recorded, const aim_stamp *current);

/* Write one escaped field. */
void aim_tsv_put(FILE *fp, const char *field);
/* Write NAME, SIZE, MTIME[, SHA256] and a newline. */
void aim_manifest_put(FILE *fp, const char *name, const aim_stamp *st, int with_hash);

#endif
