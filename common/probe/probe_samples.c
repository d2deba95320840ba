/* Labelled frozen features in shuffled batches (probe_samples.h). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "probe_samples.h"

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}
static int64_t rng_below(uint64_t *s, int64_t n) { return (int64_t)(rng_next(s) % (uint64_t)n); }

/* The 0-based pass a record belongs to (aim.epoch), or -1 if not recorded. */
static int record_epoch(const aim_record *r)
{
	const char *v = aim_record_get_meta(r, "aim.epoch");
	return v ? atoi(v) : -1;
}

/* Check a record against the first one and find its labels. */
static int record_samples(aim_probe_samples *s, const aim_record *r, const char *what,
			  int64_t *B, const int64_t **labels)
{
	int64_t K, D;
	if (aim_features_shape(r, what, B, &K, &D, &s->lb, labels))
		return AIM_ERR;
	const aim_tensor *f = aim_record_find(r, "features");
	if (!*labels)
		return aim_error("%s: no 'label' tensor: aim-probe needs labelled features", what);
	if (!s->sample_bytes) {
		s->K = K, s->D = D, s->dtype = f->dtype;
		s->sample_bytes = (size_t)(K * D) * aim_dtype_size(f->dtype);
	} else if (K != s->K || D != s->D || f->dtype != s->dtype) {
		return aim_error("%s: features [%lld, %lld] %s after [%lld, %lld] %s", what,
				 (long long)K, (long long)D, aim_dtype_name(f->dtype),
				 (long long)s->K, (long long)s->D, aim_dtype_name(s->dtype));
	}
	if (!s->have_meta) {
		for (int i = 0; i < r->nmeta; i++)
			aim_record_set_meta(&s->meta, r->meta[i].key, r->meta[i].value);
		s->have_meta = 1;
	} else if (aim_record_get_meta(r, "aim.classes")) {
		aim_record_set_meta(&s->meta, "aim.classes", aim_record_get_meta(r, "aim.classes"));
	}
	for (int64_t b = 0; b < *B; b++) {
		if ((*labels)[b] < -1)
			return aim_error("%s: label %lld", what, (long long)(*labels)[b]);
		if ((*labels)[b] > s->max_label)
			s->max_label = (*labels)[b];
	}
	return AIM_OK;
}

/* Append one sample to the in-memory copy. */
static int hold(aim_probe_samples *s, const unsigned char *sample, int64_t label)
{
	if (s->nall == s->capall) {
		int64_t cap = s->capall ? 2 * s->capall : 1024;
		unsigned char *all = realloc(s->all, (size_t)cap * s->sample_bytes);
		if (all)
			s->all = all;
		int64_t *labels = realloc(s->all_labels, (size_t)cap * sizeof(int64_t));
		if (labels)
			s->all_labels = labels;
		if (!all || !labels)
			return aim_error("out of memory holding %lld samples of %zu bytes",
					 (long long)cap, s->sample_bytes);
		s->capall = cap;
	}
	memcpy(s->all + (size_t)s->nall * s->sample_bytes, sample, s->sample_bytes);
	s->all_labels[s->nall++] = label;
	return AIM_OK;
}

int aim_probe_samples_open(aim_probe_samples *s, const char *const *inputs, int ninputs,
			   uint64_t seed, double shuffle_mb)
{
	memset(s, 0, sizeof *s);
	s->max_label = -1;
	s->rng = seed * 0x2545F4914F6CDD1Dull + 1;
	aim_record_init(&s->rec);
	aim_record_init(&s->meta);
	s->rd = aim_reader_open(inputs, ninputs);
	if (!s->rd)
		return AIM_ERR;
	s->in_memory = !aim_reader_rewindable(s->rd);
	int rc;
	while ((rc = aim_reader_next(s->rd, &s->rec)) == 1) {
		if (record_epoch(&s->rec) > 0) {
			/* a looping producer: one pass is the data; the rest would
			 * only grow memory */
			s->loops = record_epoch(&s->rec);
			break;
		}
		int64_t B;
		const int64_t *labels;
		if (record_samples(s, &s->rec, aim_reader_where(s->rd), &B, &labels))
			return AIM_ERR;
		const unsigned char *data = aim_record_find(&s->rec, "features")->data;
		for (int64_t b = 0; b < B; b++) {
			if (labels[b] < 0) {
				s->unlabelled++;
				continue;
			}
			s->total++;
			if (s->in_memory && hold(s, data + (size_t)b * s->sample_bytes, labels[b]))
				return AIM_ERR;
		}
	}
	if (rc < 0)
		return rc;
	if (!s->total)
		return aim_error("%s: no labelled samples", ninputs ? inputs[0] : "stdin");
	if (s->in_memory) {
		if (!(s->perm = malloc((size_t)s->nall * sizeof(int64_t))))
			return aim_error("out of memory");
		return AIM_OK;
	}
	s->cap = (int64_t)(shuffle_mb * 1e6 / (double)s->sample_bytes);
	if (s->cap < 1)
		s->cap = 1;
	if (s->cap > s->total)
		s->cap = s->total;
	s->buf = malloc((size_t)s->cap * s->sample_bytes);
	s->buf_labels = malloc((size_t)s->cap * sizeof(int64_t));
	if (!s->buf || !s->buf_labels)
		return aim_error("out of memory for a shuffle buffer of %lld samples (--shuffle-buffer)",
				 (long long)s->cap);
	return AIM_OK;
}

int aim_probe_samples_start_epoch(aim_probe_samples *s)
{
	if (s->in_memory) {
		for (int64_t i = 0; i < s->nall; i++)
			s->perm[i] = i;
		for (int64_t i = s->nall - 1; i > 0; i--) {
			int64_t j = rng_below(&s->rng, i + 1), t = s->perm[i];
			s->perm[i] = s->perm[j], s->perm[j] = t;
		}
		s->next = 0;
		return AIM_OK;
	}
	if (aim_reader_rewind(s->rd))
		return AIM_ERR;
	s->fill = 0;
	s->rec_pos = s->rec_B = 0;
	s->input_done = 0;
	return AIM_OK;
}

/* Next labelled sample from the reader into the shuffle buffer slot `slot`;
 * 1, or 0 at the end of the input, or AIM_ERR. */
static int pull(aim_probe_samples *s, int64_t slot)
{
	for (;;) {
		while (s->rec_pos < s->rec_B) {
			int64_t b = s->rec_pos++;
			if (s->rec_labels[b] < 0)
				continue;
			const aim_tensor *f = aim_record_find(&s->rec, "features");
			memcpy(s->buf + (size_t)slot * s->sample_bytes,
			       (const unsigned char *)f->data + (size_t)b * s->sample_bytes, s->sample_bytes);
			s->buf_labels[slot] = s->rec_labels[b];
			return 1;
		}
		if (s->input_done)
			return 0;
		int rc = aim_reader_next(s->rd, &s->rec);
		if (rc < 0)
			return rc;
		if (rc == 0 || record_epoch(&s->rec) > 0) { /* the end of the first pass */
			s->input_done = 1;
			return 0;
		}
		if (record_samples(s, &s->rec, aim_reader_where(s->rd), &s->rec_B, &s->rec_labels))
			return AIM_ERR;
		s->rec_pos = 0;
	}
}

/* Samples are gathered in their own dtype, then converted in parallel. */
int64_t aim_probe_samples_batch(aim_probe_samples *s, float *x, int64_t *y, int64_t max)
{
	int64_t n = 0, per = s->K * s->D;
	size_t sb = s->sample_bytes;
	if ((size_t)max * sb > s->rawcap) {
		free(s->raw);
		s->rawcap = (size_t)max * sb;
		if (!(s->raw = malloc(s->rawcap))) {
			s->rawcap = 0;
			return aim_error("out of memory for a batch of %lld", (long long)max);
		}
	}
	unsigned char *raw = s->raw;
	while (n < max) {
		if (s->in_memory) {
			if (s->next == s->nall)
				break;
			int64_t i = s->perm[s->next++];
			y[n] = s->all_labels[i];
			memcpy(raw + (size_t)n * sb, s->all + (size_t)i * sb, sb);
		} else {
			int rc = 1;
			while (s->fill < s->cap && (rc = pull(s, s->fill)) == 1)
				s->fill++;
			if (s->fill < s->cap && rc < 0)
				return rc;
			if (!s->fill)
				break;
			/* emit a random slot and close the gap with the last one */
			int64_t j = rng_below(&s->rng, s->fill);
			memcpy(raw + (size_t)n * sb, s->buf + (size_t)j * sb, sb);
			y[n] = s->buf_labels[j];
			s->fill--;
			if (j != s->fill) {
				memcpy(s->buf + (size_t)j * sb, s->buf + (size_t)s->fill * sb, sb);
				s->buf_labels[j] = s->buf_labels[s->fill];
			}
		}
		n++;
	}
#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < n; i++)
		aim_convert(x + i * per, AIM_F32, raw + (size_t)i * sb, s->dtype, (size_t)per);
	return n;
}

void aim_probe_samples_close(aim_probe_samples *s)
{
	aim_reader_close(s->rd);
	aim_record_free(&s->rec);
	aim_record_free(&s->meta);
	free(s->all), free(s->all_labels), free(s->perm), free(s->buf), free(s->buf_labels);
	aim_label_buf_free(&s->lb);
	free(s->raw);
}
