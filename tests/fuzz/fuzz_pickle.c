/* libFuzzer target: the restricted torch pickle reader (pickle.h) on
 * arbitrary bytes, as if they were a checkpoint's data.pkl. Whatever it
 * accepts must describe views inside their storages. */
#include <stdlib.h>
#include <string.h>

#include "pickle.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	/* A copy of exactly `size` bytes, so reading past the end is caught. */
	unsigned char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	aim_pickle_tensors ts;
	if (aim_pickle_parse_state_dict(buf, size, "fuzz", &ts) == 0) {
		for (int i = 0; i < ts.n; i++) {
			const aim_pickle_tensor *t = &ts.t[i];
			if (!t->name[0] || !t->storage_key[0] || t->ndim < 0 || t->ndim > AIM_MAX_DIMS ||
			    t->offset < 0 || t->extent < 0 || t->offset + t->extent > t->storage_numel ||
			    t->dtype < 0 || t->dtype >= AIM_DTYPE_COUNT)
				abort();
			for (int d = 0; d < t->ndim; d++)
				if (t->shape[d] < 0 || t->stride[d] < 0)
					abort();
		}
		aim_pickle_tensors_free(&ts);
	}
	free(buf);
	return 0;
}
