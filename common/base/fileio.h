/* Files written atomically, and small I/O helpers. */
#ifndef AIM_FILEIO_H
#define AIM_FILEIO_H

#include <stdio.h>
#include <stddef.h>

/* An output that appears under its final name only when complete.
 * For path "-" or NULL it is stdout (no rename); an existing device or
 * FIFO (/dev/null, /dev/stdout) is written in place. */
typedef struct {
	FILE *fp;
	char *path;     /* final name, NULL for stdout */
	char *tmppath;  /* temporary name in the same directory */
	int is_stdout;
} aim_outfile;

/* binary: refuse to write to a terminal when the output is stdout. */
int aim_out_open(aim_outfile *o, const char *path, int binary);
/* Flush, fsync, rename. Reports full disks and closed pipes (AIM_EPIPE). */
int aim_out_commit(aim_outfile *o);
/* Remove the temporary file (on error paths). */
void aim_out_abort(aim_outfile *o);

/* Write all bytes; returns AIM_EPIPE on a closed pipe, AIM_ERR otherwise. */
int aim_write_all(FILE *fp, const void *buf, size_t n, const char *what);

/* Read a whole file into a malloc'd, NUL-terminated buffer. */
int aim_read_file(const char *path, char **buf, size_t *len);

/* Write a whole buffer to path atomically. */
int aim_write_file_atomic(const char *path, const void *buf, size_t len);

/* An exclusive advisory lock (flock) on path, created if missing, taken
 * without waiting: AIM_ERR saying that another process holds it. The lock
 * goes with the process (also when it is killed). */
int aim_lock_take(const char *path, int *fd);
void aim_lock_release(int fd);

/* mkdir(dir), content when it exists already. */
int aim_mkdir(const char *dir);

/* fflush(fp): AIM_EPIPE on a closed pipe, AIM_ERR naming `name` on another
 * failure. */
int aim_flush(FILE *fp, const char *name);
/* 1 if path ("-": standard input) is a regular file (not a pipe or device). */
int aim_is_regular_file(const char *path);

#endif
