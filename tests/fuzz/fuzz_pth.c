/* libFuzzer target: a whole PyTorch checkpoint (pth.h) from arbitrary
 * bytes, i.e. the zip layer (entries, declared sizes, deflate, CRCs), the
 * pickle and the copying of views out of storages. The bytes are loaded
 * through a memory file, as aim_pth_load reads a path. Whatever loads must
 * be a well-formed record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pth.h"
#include "record.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("fuzz_pth", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	aim_record r;
	aim_record_init(&r);
	if (aim_pth_load(path, &r) == 0) {
		if (r.n < 1)
			abort();
		for (int i = 0; i < r.n; i++) {
			const aim_tensor *t = &r.t[i];
			if (!t->name[0] || t->ndim < 0 || t->ndim > AIM_MAX_DIMS ||
			    t->nbytes != (size_t)aim_shape_numel(t->ndim, t->shape) * aim_dtype_size(t->dtype))
				abort();
			volatile unsigned char sink = 0;
			for (size_t b = 0; b < t->nbytes; b++) /* every byte readable */
				sink ^= ((const unsigned char *)t->data)[b];
			(void)sink;
		}
	} else if (r.n != 0) { /* a failed load leaves the record as it was */
		abort();
	}
	aim_record_free(&r);
	return 0;
}
