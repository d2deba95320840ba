/* Outputs that appear under their final name only when complete. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

int aim_out_open(aim_outfile *o, const char *path, int binary)
{
	memset(o, 0, sizeof *o);
	if (!path || !strcmp(path, "-")) {
		if (binary && isatty(STDOUT_FILENO))
			return aim_error("refusing to write binary data to a terminal (use -o FILE or a pipe)");
		o->fp = stdout;
		o->is_stdout = 1;
		return 0;
	}
	/* A device or a FIFO (-o /dev/null, -o /dev/stdout) is written in place:
	 * renaming a temporary file over it would replace the device itself. */
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return aim_error("%s: cannot open: %s", path, strerror(errno));
		if (binary && isatty(fd)) {
			close(fd);
			return aim_error("%s: refusing to write binary data to a terminal", path);
		}
		if (!(o->fp = fdopen(fd, "wb")) || !(o->path = strdup(path))) {
			if (o->fp)
				fclose(o->fp);
			else
				close(fd);
			return aim_error("%s: %s", path, strerror(errno));
		}
		return 0; /* no tmppath: commit closes, abort closes */
	}
	o->path = strdup(path);
	size_t n = strlen(path) + 32;
	o->tmppath = malloc(n);
	if (!o->path || !o->tmppath)
		return aim_error("out of memory");
	/* Same directory as the final name, so rename() is atomic. */
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path + 1) : 0;
	snprintf(o->tmppath, n, "%.*s.%s.tmp%ld", dirlen, path, slash ? slash + 1 : path,
		 (long)getpid());
	int fd = open(o->tmppath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		free(o->path);
		free(o->tmppath);
		o->path = o->tmppath = NULL;
		return aim_error("%s: cannot create: %s", path, strerror(e));
	}
	o->fp = fdopen(fd, "wb");
	if (!o->fp) {
		close(fd);
		return aim_error("%s: %s", path, strerror(errno));
	}
	return 0;
}

static int io_status(int e, const char *what)
{
	if (e == EPIPE)
		return AIM_EPIPE;
	return aim_error("%s: write failed: %s", what, strerror(e));
}

int aim_out_commit(aim_outfile *o)
{
	const char *name = o->path ? o->path : "standard output";
	int rc = 0;
	if (fflush(o->fp) != 0)
		rc = io_status(errno, name);
	if (o->is_stdout)
		return rc;
	if (!o->tmppath) { /* a device or FIFO, written in place */
		if (fclose(o->fp) != 0 && !rc)
			rc = io_status(errno, name);
		free(o->path);
		memset(o, 0, sizeof *o);
		return rc;
	}
	if (!rc && fsync(fileno(o->fp)) != 0 && errno != EINVAL)
		rc = io_status(errno, name);
	if (fclose(o->fp) != 0 && !rc)
		rc = io_status(errno, name);
	o->fp = NULL;
	if (!rc && rename(o->tmppath, o->path) != 0)
		rc = aim_error("%s: cannot rename into place: %s", o->path, strerror(errno));
	if (rc)
		unlink(o->tmppath);
	free(o->path);
	free(o->tmppath);
	o->path = o->tmppath = NULL;
	return rc;
}

void aim_out_abort(aim_outfile *o)
{
	if (o->is_stdout) {
		fflush(o->fp);
		return;
	}
	if (o->fp)
		fclose(o->fp);
	if (o->tmppath)
		unlink(o->tmppath);
	free(o->path);
	free(o->tmppath);
	memset(o, 0, sizeof *o);
}

int aim_write_all(FILE *fp, const void *buf, size_t n, const char *what)
{
	if (n && fwrite(buf, 1, n, fp) != n)
		return io_status(errno ? errno : EIO, what);
	return 0;
}

int aim_read_file(const char *path, char **buf, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return aim_error("%s: %s", path, strerror(errno));
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap + 1);
	while (b) {
		size_t got = fread(b + n, 1, cap - n, fp);
		n += got;
		if (n < cap)
			break;
		cap *= 2;
		char *nb = realloc(b, cap + 1);
		if (!nb)
			free(b);
		b = nb;
	}
	int err = ferror(fp);
	fclose(fp);
	if (!b)
		return aim_error("%s: out of memory", path);
	if (err) {
		free(b);
		return aim_error("%s: read error", path);
	}
	b[n] = 0;
	*buf = b;
	*len = n;
	return 0;
}

int aim_write_file_atomic(const char *path, const void *buf, size_t len)
{
	aim_outfile o;
	if (aim_out_open(&o, path, 0))
		return AIM_ERR;
	int rc = aim_write_all(o.fp, buf, len, path);
	if (rc) {
		aim_out_abort(&o);
		return rc;
	}
	return aim_out_commit(&o);
}

int aim_lock_take(const char *path, int *fd)
{
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (*fd < 0)
		return aim_error("%s: cannot create the lock file: %s", path, strerror(errno));
	if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	int e = errno;
	close(*fd);
	*fd = -1;
	if (e == EWOULDBLOCK)
		return aim_error("%s: locked by another process, which is updating the same "
				 "files; try again when it has finished", path);
	return aim_error("%s: cannot lock: %s", path, strerror(e));
}

void aim_lock_release(int fd)
{
	if (fd >= 0)
		close(fd); /* closing the descriptor releases the lock */
}

int aim_mkdir(const char *dir)
{
	if (mkdir(dir, 0777) && errno != EEXIST)
		return aim_error("%s: cannot create directory: %s", dir, strerror(errno));
	return AIM_OK;
}

int aim_flush(FILE *fp, const char *name)
{
	if (fflush(fp) == 0 && !ferror(fp))
		return 0;
	if (errno == EPIPE)
		return AIM_EPIPE;
	return aim_error("%s: write failed: %s", name, strerror(errno));
}

int aim_is_regular_file(const char *path)
{
	struct stat st;
	int rc = strcmp(path, "-") ? stat(path, &st) : fstat(0, &st);
	return rc == 0 && S_ISREG(st.st_mode);
}
