/* A record: named tensors plus string metadata, i.e. one safetensors file.
 *
 * The same structure is a safetensors file on disk (safetensors.h) and one
 * record of a tensor stream (stream.h). Byte layout (normative, DESIGN.md):
 *   u64 little-endian N | N bytes of JSON header | data section
 * The JSON header maps tensor names to {"dtype","shape","data_offsets"} and
 * may hold "__metadata__": an object of string values.
 *
 * Parsing validates everything before any data is touched: header length
 * bounded, JSON well-formed, known dtypes only, shapes non-negative,
 * byte length = dtype size x element count, offsets inside the data section
 * and non-overlapping. */
#ifndef AIM_RECORD_H
#define AIM_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

/* Largest header we accept (the reference implementation uses 100 MB). */
#define AIM_MAX_HEADER (100u << 20)

typedef struct aim_meta_entry {
	char *key, *value;
} aim_meta_entry;

typedef struct {
	int n, cap;
	aim_tensor *t;          /* n tensors, in data-offset order when parsed */
	int nmeta, capmeta;
	aim_meta_entry *meta;   /* __metadata__, in insertion order */
	/* Backing storage: tensors' data point into `buf` (owned, malloc'd) or
	 * into an external mapping (not owned). Tensors added with
	 * aim_record_add() own their data individually (owned_data). */
	void *buf;
	size_t buflen;
	unsigned char *owned_data; /* per tensor: 1 if t[i].data is malloc'd */
} aim_record;

void aim_record_init(aim_record *r);
void aim_record_free(aim_record *r);
/* Remove all tensors and metadata but keep allocations for reuse. */
void aim_record_clear(aim_record *r);

/* Parse a serialised record held in buf[0..len). If `take` is nonzero the
 * record takes ownership of buf (free() on aim_record_free); otherwise the
 * tensors point into buf, which must outlive the record.
 * `what` names the source for messages ("features.aimt record 3"). */
int aim_record_parse(aim_record *r, void *buf, size_t len, int take, const char *what);

/* For readers that fetch a record in pieces: the header length from the
 * first 8 bytes (bounded by AIM_MAX_HEADER), then the data-section length
 * from the JSON header text (the largest end offset). */
int aim_record_header_len(const void *first8, uint64_t *header_len, const char *what);
int aim_record_data_len(const char *json, size_t json_len, uint64_t *data_len, const char *what);

/* Add a tensor; data is copied if non-NULL, else zero-filled storage is
 * allocated. Returns the tensor (valid until the next add) or NULL. */
aim_tensor *aim_record_add(aim_record *r, const char *name, aim_dtype dt, int ndim,
			   const int64_t *shape, const void *data);
/* Add a tensor that points to external data (not copied, not freed). */
aim_tensor *aim_record_add_ref(aim_record *r, const char *name, aim_dtype dt, int ndim,
			       const int64_t *shape, void *data);
/* aim_record_add (zero-filled) without the search for a tensor of the same
 * name, for loaders that checked their names themselves: adding n tensors
 * is O(n) instead of O(n^2). The name must not be in r. */
aim_tensor *aim_record_add_new(aim_record *r, const char *name, aim_dtype dt, int ndim,
			       const int64_t *shape);
aim_tensor *aim_record_find(const aim_record *r, const char *name);
int aim_record_remove(aim_record *r, const char *name);
/* Remove every tensor after the first n (a failed load's undo). */
void aim_record_truncate(aim_record *r, int n);

/* Metadata (string values). set replaces an existing key. */
int aim_record_set_meta(aim_record *r, const char *key, const char *value);
const char *aim_record_get_meta(const aim_record *r, const char *key);
/* A metadata value holding n numbers: a JSON array, malloc'd (NULL: out of
 * memory), each number with 9 significant digits. */
char *aim_meta_floats(const double *v, int n);

/* Serialise into a malloc'd buffer (header padded with spaces to a multiple
 * of 8 so data is aligned, as the reference writer does). */
int aim_record_serialize(const aim_record *r, void **out, size_t *outlen);
/* The same into a reusable buffer (*buf of *cap bytes, grown with realloc):
 * writers of many records avoid an allocation per record. */
int aim_record_serialize_into(const aim_record *r, void **buf, size_t *cap, size_t *outlen);

/* Deep copy (owns all data). */
int aim_record_copy(aim_record *dst, const aim_record *src);

#endif
