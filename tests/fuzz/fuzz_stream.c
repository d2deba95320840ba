/* libFuzzer target: the stream reader (zstd or raw framing, then records)
 * and the re-batcher on arbitrary bytes, read through a memfd. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stream.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	int fd = memfd_create("fuzz", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	const char *paths[] = {path};
	aim_reader *rd = aim_reader_open(paths, 1);
	if (rd) {
		aim_batcher *b = aim_batcher_new(rd, 3);
		aim_record r;
		aim_record_init(&r);
		for (int i = 0; i < 64 && aim_batcher_next(b, &r) > 0; i++)
			;
		aim_record_free(&r);
		aim_batcher_free(b);
		aim_reader_close(rd);
	}
	close(fd);
	return 0;
}
