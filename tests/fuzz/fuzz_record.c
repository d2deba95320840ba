/* libFuzzer target: the record (safetensors) parser on arbitrary bytes. */
#include <stdlib.h>
#include <string.h>

#include "record.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	void *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	aim_record r;
	aim_record_init(&r);
	if (aim_record_parse(&r, buf, size, 1, "fuzz") == 0) {
		/* Touch every byte of every tensor: offsets must be in bounds. */
		volatile unsigned sum = 0;
		for (int i = 0; i < r.n; i++)
			for (size_t k = 0; k < r.t[i].nbytes; k++)
				sum += ((unsigned char *)r.t[i].data)[k];
		void *out;
		size_t outlen;
		if (aim_record_serialize(&r, &out, &outlen) == 0)
			free(out);
	}
	aim_record_free(&r);
	return 0;
}
