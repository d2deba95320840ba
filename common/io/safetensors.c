/* safetensors files: mmap + validate on read; atomic write. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fileio.h"

int aim_st_open(aim_stfile *f, const char *path)
{
	memset(f, 0, sizeof *f);
	aim_record_init(&f->rec);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return aim_error("%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return aim_error("%s: not a regular file", path);
	}
	if (st.st_size < 8) {
		close(fd);
		return aim_error("%s: %lld bytes is too short for a safetensors file", path,
				 (long long)st.st_size);
	}
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return aim_error("%s: cannot map: %s", path, strerror(errno));
	if (aim_record_parse(&f->rec, map, (size_t)st.st_size, 0, path)) {
		munmap(map, (size_t)st.st_size);
		return AIM_ERR;
	}
	f->map = map;
	f->maplen = (size_t)st.st_size;
	return 0;
}

void aim_st_close(aim_stfile *f)
{
	aim_record_free(&f->rec);
	if (f->map)
		munmap(f->map, f->maplen);
	f->map = NULL;
}

int aim_st_write(const char *path, const aim_record *r)
{
	void *buf;
	size_t len;
	if (aim_record_serialize(r, &buf, &len))
		return aim_error_prefix("%s", path);
	int rc = aim_write_file_atomic(path, buf, len);
	free(buf);
	return rc;
}
