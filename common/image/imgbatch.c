/* A batch of listed images read, decoded, transformed and cut into
 * patches in parallel (imgbatch.h). */
#include "imgbatch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

static int read_whole_file(const char *path, uint8_t **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return aim_error("%s", strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
		close(fd);
		return aim_error("%s", strerror(e));
	}
	size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 16;
	size_t n = 0;
	uint8_t *b = malloc(cap);
	for (;;) {
		if (!b) {
			close(fd);
			return aim_error("out of memory");
		}
		ssize_t got = read(fd, b + n, cap - n);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(b);
			close(fd);
			return aim_error("%s", strerror(e));
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (n == cap) {
			cap *= 2;
			uint8_t *nb = realloc(b, cap);
			if (!nb)
				free(b);
			b = nb;
		}
	}
	close(fd);
	*data = b;
	*len = n;
	return AIM_OK;
}

/* [S, S, C] interleaved pixels to K patches of C*p*p values ordered channel,
 * row, column; patches in raster order. */
static void cut_patches(const uint8_t *img, int S, int C, int p, uint8_t *out)
{
	int g = S / p;
	size_t pp = (size_t)p * p;
	for (int pr = 0; pr < g; pr++)
		for (int pc = 0; pc < g; pc++, out += C * pp)
			for (int r = 0; r < p; r++) {
				const uint8_t *src = img + ((size_t)(pr * p + r) * S + pc * p) * C;
				uint8_t *dst = out + (size_t)r * p;
				if (C == 3) /* one pass over the row, three planes out */
					for (int x = 0; x < p; x++) {
						dst[x] = src[3 * x];
						dst[pp + x] = src[3 * x + 1];
						dst[2 * pp + x] = src[3 * x + 2];
					}
				else
					memcpy(dst, src, (size_t)p);
			}
}

static void process_slot(const aim_imgcut *o, const aim_imglist *l, int64_t epoch,
			 aim_imgslot *s, uint8_t *patches, uint8_t *scratch)
{
	const char *name = l->items[s->item].name;
	uint8_t *data = s->data;
	size_t len = s->len;
	aim_image im = {0};
	int rc = AIM_OK;
	if (!data)
		rc = read_whole_file(name, &data, &len);
	if (rc == AIM_OK)
		rc = aim_image_decode(data, len, o->channels, o->max_pixels, &im);
	if (rc == AIM_OK) {
		if (o->train) {
			aim_train_draw_params(&o->aug, o->seed, epoch, s->item, im.w, im.h, o->size, &s->draw);
			rc = aim_transform_train(&im, o->size, &s->draw, scratch);
		} else {
			rc = aim_transform_val(&im, o->size, o->resize, scratch);
		}
	}
	if (rc == AIM_OK)
		cut_patches(scratch, o->size, o->channels, o->patch, patches);
	s->ok = rc == AIM_OK;
	if (!s->ok)
		snprintf(s->err, sizeof s->err, "%s", aim_errmsg());
	aim_image_free(&im);
	if (data != s->data)
		free(data);
	free(s->data);
	s->data = NULL;
}

void aim_imgbatch_decode(const aim_imgcut *o, const aim_imglist *l, int64_t epoch,
			 aim_imgslot *slots, int count, uint8_t *patches, size_t sample_bytes)
{
#pragma omp parallel
	{
		uint8_t *scratch = malloc((size_t)o->size * o->size * o->channels);
#pragma omp for schedule(dynamic, 1)
		for (int i = 0; i < count; i++) {
			if (!scratch) {
				slots[i].ok = 0;
				snprintf(slots[i].err, sizeof slots[i].err, "out of memory");
				free(slots[i].data);
				slots[i].data = NULL;
				continue;
			}
			process_slot(o, l, epoch, &slots[i], patches + (size_t)i * sample_bytes,
				     scratch);
		}
		free(scratch);
	}
}
