/* What aim-probe and aim-eval read from a features stream: the features and
 * labels of a record as floats, the class list, and the number of attention
 * heads the producing model used. */
#ifndef AIM_PROBE_DATA_H
#define AIM_PROBE_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "stream.h"

/* Labels as an aligned array. safetensors does not align its tensors, so a
 * record from another writer may hold "label" at an odd offset: it is then
 * copied into buf (grown as needed; free with aim_label_buf_free). */
typedef struct {
	int64_t *p;
	size_t cap;
} aim_label_buf;
void aim_label_buf_free(aim_label_buf *b);
/* The record's "label" tensor, which must be I64 [B]; *labels is NULL when
 * the record has none. Errors name what. */
int aim_record_labels(const aim_record *r, int64_t B, const char *what, aim_label_buf *buf,
		      const int64_t **labels);

/* Shape of the "features" tensor of a record: [B, K, D] per patch or
 * [B, D] pooled (then *K = 1), and its labels as aim_record_labels gives
 * them. Errors name what. */
int aim_features_shape(const aim_record *r, const char *what, int64_t *B, int64_t *K,
		       int64_t *D, aim_label_buf *buf, const int64_t **labels);

/* Class names from the "aim.classes" metadata (a JSON list of strings).
 * Returns the count (0 when the key is absent) and a malloc'd array of
 * malloc'd strings in *names (free with aim_classes_free), or AIM_ERR. */
int aim_classes_parse(const aim_record *r, const char *what, char ***names);
void aim_classes_free(char **names, int n);
/* 1 if two lists are the same names in the same order. */
int aim_classes_equal(char **a, int na, char **b, int nb);

/* aim_to_f32 split over threads (features are large; F16/BF16 conversion
 * is the first cost of every batch). */
void aim_features_to_f32(float *dst, const aim_tensor *t);

/* Attention heads of the model that made the features, from the metadata
 * "aim.config" (its num_heads); 0 when not recorded. */
int aim_features_heads(const aim_record *r);
/* num_heads of a JSON object (aim.config metadata, a Hugging Face
 * config.json); 0 when absent or not a positive integer. */
int aim_num_heads_json(const char *text);

/* The 0-based pass a record belongs to (aim.epoch), or -1 if not recorded. */
int aim_record_epoch(const aim_record *r);

/* Labelled samples of one pass over a rewindable patches file (counting
 * only the first pass of a looping producer's output), the reader rewound
 * after; < 0 on error. */
int64_t aim_reader_count_labelled(aim_reader *rd);

/* The labelled rows of a batch (x [B, per], labels[b] < 0: none), packed;
 * buffers grow as needed and are kept between batches. */
typedef struct {
	float *x;
	int64_t *y;
	size_t cap;
} aim_labelled;
/* Returns how many rows were kept, or AIM_ERR (out of memory). */
int64_t aim_keep_labelled(aim_labelled *k, const float *x, const int64_t *labels, int64_t B,
			  size_t per);
void aim_labelled_free(aim_labelled *k);

#endif
