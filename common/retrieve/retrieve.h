/* Nearest-neighbour retrieval over a bank of feature vectors (aim-retrieve).
 *
 * The design follows the dense retriever of retrieval-augmented multimodal
 * models (a bi-encoder, maximum inner product search over a memory bank):
 * features are pooled to one vector per sample, L2-normalised unless raw
 * inner product is asked for, and searched exactly.
 *
 *   retrieve_prepare.c  pooling, query dropout, normalisation, checks
 *   retrieve_bank.c     the bank: built from streams, or an index file
 *   retrieve_search.c   exact search: blocked GEMM/GEMV + top-k selection
 *   retrieve_results.c  result sets: from a search, to/from stream records,
 *                       merge of shards, weighted k-NN vote
 *   retrieve_sheet.c    contact sheet PNG
 *
 * Index file (a safetensors file, read through mmap so a bank larger than
 * memory streams from the page cache):
 *   vectors       F32 [N, D]  prepared rows (pooled, normalised if so)
 *   id            I64 [N]     sample ids from the source stream
 *   label         I64 [N]     labels (-1 unknown); absent if none known
 *   names         U8  [L]     NUL-terminated names, back to back; absent
 *                             if the source had no aim.names
 *   name_offsets  I64 [N]     start of each name in `names`
 *   file_size     I64 [N]     size in bytes of the image file each row was
 *                             extracted from (-1 unknown); with file_mtime,
 *                             present in indexes built with --sync
 *   file_mtime    I64 [N]     its modification time, ns since the epoch
 *                             (INT64_MIN unknown)
 *   file_sha256   U8 [N, 32]  its SHA-256 (all zero unknown); present when
 *                             the --sync listing carried hashes
 *   metadata: aim.index = "retrieve-1", aim.pool, aim.normalized ("1"/"0"),
 *             aim.base (first row within the whole bank, for shards), aim.classes (when known), aim.model / aim.layers
 *             (copied from the features stream when present). */
#ifndef AIM_RETRIEVE_H
#define AIM_RETRIEVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "manifest.h"
#include "record.h"
#include "safetensors.h"

#define AIM_INDEX_FORMAT "retrieve-1"

typedef enum { AIM_POOL_MEAN, AIM_POOL_MAX, AIM_POOL_CLS } aim_pool;
/* "mean", "max", "cls" -> pool; -1 if unknown. */
int aim_pool_parse(const char *s);
const char *aim_pool_name(aim_pool p);

/* --- preparation (retrieve_prepare.c) ------------------------------------ */

typedef struct {
	aim_pool pool;
	int normalize;      /* L2-normalise each pooled vector */
	double dropout;     /* fraction of patch tokens dropped before pooling */
	uint64_t seed;      /* dropout seed */
} aim_prep;

/* Pool the `features` tensor of a record ([B,K,D] or [B,D], F32/F16/BF16)
 * into out[B, D] floats. `first` is the position of the record's first
 * sample in its input (dropout draws depend on it, not on batching).
 * Fails, naming `what` and the sample, on NaN/Inf or a zero vector that
 * must be normalised. *dim receives D; out must hold B*D floats (call with
 * out NULL to learn B and D only). Returns B or AIM_ERR. */
int64_t aim_prep_features(const aim_tensor *feat, const aim_prep *p, int64_t first,
			  float *out, int64_t *dim, const char *what);

/* The token indices kept by query dropout for sample `index` of a query
 * input with K tokens (the documented draw: splitmix64 seeded with
 * seed + index * 0x9E3779B97F4A7C15, partial Fisher-Yates). keep[] gets
 * max(1, K - round(p*K)) indices in draw order; returns that count. */
int64_t aim_dropout_keep(uint64_t seed, int64_t index, int64_t K, double p, int64_t *keep);

/* Names of a record's samples: the aim.names JSON list when present (its
 * length must be B), else NULL entries. names[] gets B malloc'd strings or
 * NULL; free with aim_names_free. */
int aim_names_parse(const aim_record *r, int64_t B, char **names, const char *what);
void aim_names_free(char **names, int64_t B);

/* --- the bank (retrieve_bank.c) ------------------------------------------ */

typedef struct {
	int64_t n, dim;
	const float *vec;        /* [n, dim] */
	const int64_t *id;       /* [n] */
	const int64_t *label;    /* [n], or NULL when no label is known */
	const char *names;       /* NUL-terminated names, or NULL */
	const int64_t *name_off; /* [n] offsets into names */
	char *classes;           /* aim.classes JSON list, or NULL */
	char *model, *layers;    /* provenance metadata, or NULL */
	aim_pool pool;
	int normalized;
	char *source;            /* for messages: the first bank path */
	int64_t base;            /* row 0 here is row `base` of the whole bank
				  * (shards); base + row is the neighbour key */
	const int64_t *fsize;    /* [n] file stamps (aim_bank_stamp), or NULL */
	const int64_t *fmtime;   /* [n], with fsize */
	const uint8_t *fsha;     /* [n, 32], or NULL */
	/* storage: an mmap'd index or owned arrays */
	aim_stfile *file;
	float *own_vec;
	int64_t *own_id, *own_label, *own_off, *own_fsize, *own_fmtime;
	uint8_t *own_fsha;
	char *own_names;
	/* while built record by record (aim_bank_append) */
	aim_prep prep;
	size_t cap_vec, cap_row, cap_lab, cap_off, cap_names, len_names, cap_stamp;
	int have_names;
} aim_bank;

/* 1 if path is an index file written by aim_bank_save_index. */
int aim_bank_is_index(const char *path);
/* Read features streams (files, concatenated) into a prepared bank. */
int aim_bank_from_streams(aim_bank *b, const char *const *paths, int npaths, const aim_prep *p);
/* The same record by record: begin, append each record, end. */
void aim_bank_begin(aim_bank *b, const aim_prep *p, const char *source);
/* Point the bank's views at its owned arrays (after they grew or moved). */
void aim_bank_own_views(aim_bank *b);
int aim_bank_append(aim_bank *b, const aim_record *rec, const char *what);
void aim_bank_end(aim_bank *b);
/* Append the rows of another bank (an index: vectors as prepared, ids,
 * labels, names and file stamps); its pooling must be this bank's. */
int aim_bank_append_bank(aim_bank *b, const aim_bank *src);
/* The file stamp recorded for a row (unknown where the index has none). */
aim_stamp aim_bank_stamp(const aim_bank *b, int64_t row);

/* --- updating an index (retrieve_update.c) -------------------------------- */

typedef struct {
	const aim_manifest *remove; /* names to drop, or NULL */
	const aim_manifest *sync;   /* the listing to follow, or NULL */
} aim_update;

/* The bank `old` (NULL: none) with the rows of `added` (built by
 * aim_bank_append from streams that carry aim.names) put in: a row of
 * `added` replaces the row of `old` with the same name (the last of
 * several added rows of one name wins); rows named in `remove` go. With
 * `sync`, the result follows the listing: one row per listed name, in its
 * order, with id = its 0-based position in the listing; an added row takes
 * the listing's stamp; an old row stays only if its recorded stamp is the
 * listing's (aim_stamp_same); names the listing lacks are dropped. Without
 * `sync`, old rows keep their order and ids and the added rows follow.
 * *out owns its arrays; *changed is 0 when it equals `old` row for row. */
int aim_bank_update(aim_bank *out, const aim_bank *old, const aim_bank *added,
		    const aim_update *u, int *changed);
/* Map an index file; nothing is read until searched. */
int aim_bank_open_index(aim_bank *b, const char *path);
int aim_bank_save_index(const aim_bank *b, const char *path);
/* Keep shard i of n: the contiguous rows [floor(i*N/n), floor((i+1)*N/n)). */
void aim_bank_shard(aim_bank *b, int i, int n);
void aim_bank_free(aim_bank *b);
/* Name of row `row`: the stored name, else the id in decimal (in buf). */
const char *aim_bank_name(const aim_bank *b, int64_t row, char *buf, size_t n);

/* --- search (retrieve_search.c) ------------------------------------------ */

typedef struct {
	float score;
	int64_t row; /* bank row; -1 for an empty slot */
} aim_hit;

typedef struct {
	int k;
	float max_score;       /* drop candidates scoring above this (+inf: off) */
	int labelled_only;     /* skip bank rows with label < 0 (k-NN) */
	int exclude_self;      /* skip rows with the query's name (or id) */
	int threads;
} aim_search_opts;

/* Identity of the queries, for exclude_self (arrays of m, may be NULL). */
typedef struct {
	const int64_t *id;
	char *const *name;
} aim_query_ident;

/* Exact top-k by inner product of m queries q[m, dim] against the bank.
 * out[m * k]: best first; ties broken by the lower row; slots that no
 * candidate fills have row -1 and score -inf. */
int aim_bank_search(const aim_bank *b, const float *q, int64_t m, const aim_search_opts *o,
		    const aim_query_ident *qi, aim_hit *out);

/* Greedy diversity: walk cand[0..ncand) best first and keep a candidate
 * unless its inner product with one already kept exceeds thr. Returns the
 * number kept (<= k) into out. */
int aim_diverse_pick(const aim_bank *b, const aim_hit *cand, int ncand, int k, float thr,
		     aim_hit *out);

/* Element i of an I64 tensor, wherever its data lies (a record's tensors
 * need not be 8-byte aligned). */
static inline int64_t aim_i64_at(const void *data, int64_t i)
{
	int64_t v;
	__builtin_memcpy(&v, (const char *)data + 8 * i, sizeof v);
	return v;
}

/* Order used everywhere: higher score first, then lower key. */
static inline int aim_hit_better(float sa, int64_t ka, float sb, int64_t kb)
{
	return sa > sb || (sa == sb && ka < kb);
}

/* aim_bank_search, and with diverse (not NaN) the greedy diverse pick of
 * o->k, the candidate list widened until it finds them or the bank is
 * exhausted (missing ones: score -inf, key -1). */
int aim_bank_search_diverse(const aim_bank *b, const float *q, int64_t m,
			    const aim_search_opts *o, float diverse, const aim_query_ident *qi,
			    aim_hit *out);

/* --- queries (retrieve_queries.c) ------------------------------------------ */

/* Queries read but not yet answered: prepared vectors and identities. */
typedef struct {
	int64_t m, cap, dim;
	float *q;
	int64_t *id, *label;
	char **name;
	int named, labelled;
} aim_queries;

/* Add a record's queries ("features", and "id", "label", aim.names when
 * there), prepared by p, the first one being query `seen` of the run; the
 * bank b is the one they are for (same dimension). */
int aim_queries_add(aim_queries *pd, const aim_record *rec, const aim_prep *p, int64_t seen,
		    const aim_bank *b, const char *what);
void aim_queries_free(aim_queries *pd);

/* --- result sets (retrieve_results.c) ------------------------------------ */

/* m queries, k neighbours each. Neighbour ids are bank ids; the neighbour
 * key (bank row + shard offset) orders ties and is what a merge compares. */
typedef struct {
	int64_t m;
	int k;
	int64_t *qid;       /* [m] */
	int64_t *qlabel;    /* [m], or NULL */
	char **qname;       /* [m] malloc'd */
	int64_t *nid;       /* [m*k], -1 empty */
	int64_t *nkey;      /* [m*k] global bank row, -1 empty */
	float *score;       /* [m*k], -inf empty */
	int64_t *nlabel;    /* [m*k], or NULL */
	char **nname;       /* [m*k] malloc'd, NULL empty */
	char *classes;      /* aim.classes, or NULL */
} aim_results;

int aim_results_alloc(aim_results *r, int64_t m, int k, int with_qlabel, int with_nlabel);
void aim_results_free(aim_results *r);
/* Fill neighbour columns from hits against bank b. Query columns are the
 * caller's. */
int aim_results_from_hits(aim_results *r, const aim_bank *b, const aim_hit *hits);
/* To a stream record: neighbors I64 [m,k], scores F32 [m,k], id I64 [m],
 * neighbor_keys I64 [m,k], label / neighbor_labels when known; metadata
 * aim.names, aim.neighbor_names (JSON list of m lists), aim.k, aim.classes. */
int aim_results_to_record(const aim_results *r, aim_record *rec);
int aim_results_from_record(aim_results *r, const aim_record *rec, const char *what);
/* Append r's rows to acc until acc holds `most` (a contact sheet's rows). */
int aim_results_keep(aim_results *acc, const aim_results *r, int64_t most);
/* The TSV output: query, rank, neighbour, score per found neighbour. */
void aim_results_write_tsv(FILE *fp, const aim_results *r);
/* Merge shard results for the same queries into the global top-k. */
int aim_results_merge(aim_results *out, const aim_results *parts, int nparts, int k,
		      const char *const *what);

/* Weighted k-NN vote (DINO): class c scores sum of exp(s_i / T) over
 * neighbours with label c. Returns the 0-based rank of `label` among
 * classes (classes scoring strictly higher, plus equal ones with a lower
 * index), INT64_MAX when no neighbour voted for it; nclasses entries of
 * work space. */
int64_t aim_knn_rank(const float *scores, const int64_t *labels, int k, double T,
		     int64_t label, int64_t nclasses, double *work);

/* The weighted k-NN votes of a run: queries with a label, how many had
 * the true class first and in the first five; k of the results voted. */
typedef struct {
	int64_t nlab, top1, top5;
	int k;
	double *work;  /* scratch (free it) */
	int64_t cap;
} aim_knn_tally;
/* Vote every labelled query of r (temperature T). */
int aim_knn_tally_add(aim_knn_tally *t, const aim_results *r, double temperature);

/* --- contact sheet (retrieve_sheet.c) ------------------------------------ */

/* One row per query: the query image, then its neighbours with scores
 * under them; images are read from root/name (root NULL: names as they
 * are). Returns 0 or AIM_ERR. Missing images are drawn as grey boxes and
 * counted into *missing. */
int aim_contact_sheet(const char *path, const aim_results *r, const char *root, int thumb,
		      int *missing);

#endif
