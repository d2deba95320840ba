/* The tensor stream (DESIGN.md, normative): a sequence of records, each a
 * safetensors file, each written as its own zstd frame (content checksum
 * on) and flushed. Concatenated frames are a valid stream; uncompressed
 * streams (first four bytes not the zstd magic) are accepted on input. */
#ifndef AIM_STREAM_H
#define AIM_STREAM_H

#include <stdio.h>
#include "record.h"
#include "fileio.h"

typedef struct aim_reader aim_reader;

/* Open one or more inputs read one after another as a single stream.
 * A path of "-" is stdin. npaths == 0 means stdin. */
aim_reader *aim_reader_open(const char *const *paths, int npaths);
/* Next record into r (cleared first). Returns 1 for a record, 0 at the end
 * of all inputs, AIM_ERR on a bad record (message names the input and the
 * 0-based record number; every earlier record was already delivered). */
int aim_reader_next(aim_reader *rd, aim_record *r);
/* Name of the current input and index of the last record delivered, for
 * messages: "train.aimt record 12". */
const char *aim_reader_where(const aim_reader *rd);
/* Fraction of the input read so far, in bytes of the files (0..1), for
 * progress; -1 when an input is not a regular file (a pipe). */
double aim_reader_fraction(const aim_reader *rd);
/* Rewind to the first input (files only; AIM_ERR for stdin). */
int aim_reader_rewind(aim_reader *rd);
/* 1 if every input is a regular file that can be re-read. */
int aim_reader_rewindable(const aim_reader *rd);
void aim_reader_close(aim_reader *rd);

typedef struct aim_writer aim_writer;

/* Open an output: path "-" or NULL for stdout (refused if a terminal).
 * level: zstd level (0 = uncompressed stream); workers: zstd threads. */
aim_writer *aim_writer_open(const char *path, int level, int workers);
/* Serialise, compress as one frame with checksum, write, flush.
 * Returns AIM_EPIPE when the reader downstream has gone. */
int aim_writer_write(aim_writer *w, const aim_record *r);
/* Finish: for files, fsync and rename into place. Frees w. */
int aim_writer_close(aim_writer *w);
/* Drop a partial output (error path). Frees w. */
void aim_writer_abort(aim_writer *w);

/* Re-batching: gather samples from records with varying batch sizes into
 * batches of exactly `batch` samples (the last may be smaller). Every
 * tensor whose first dimension is the record's batch size is sliced and
 * concatenated; "aim.names" is sliced alike; other metadata is taken from
 * the most recent record. A change of tensor set, dtype or trailing shape
 * between records is an error. */
typedef struct aim_batcher aim_batcher;
aim_batcher *aim_batcher_new(aim_reader *rd, int batch);
/* 1 batch, 0 end, AIM_ERR */
int aim_batcher_next(aim_batcher *b, aim_record *out);
void aim_batcher_free(aim_batcher *b);

/* Batch size of a record: first dimension of its tensors (all must agree);
 * AIM_ERR if inconsistent, 0 for a record with no tensors. */
int64_t aim_record_batch(const aim_record *r, const char *what);

#endif
