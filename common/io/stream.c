/* The tensor stream: records as zstd frames (or raw), over files and pipes. */
#include "stream.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "err.h"

#define ZSTD_MAGIC 0xFD2FB528u

/* ===== reader ============================================================= */

enum { MODE_UNKNOWN, MODE_ZSTD, MODE_RAW };

struct aim_reader {
	char **paths;
	int npaths, cur;
	FILE *fp;
	int mode, eof, failed;
	ZSTD_DStream *ds;
	unsigned char *in;
	size_t in_cap, in_pos, in_len;
	unsigned char *out;       /* decoded bytes not yet handed out as records */
	size_t out_cap, out_len;
	size_t out_ready;         /* prefix of out that belongs to finished frames */
	int frame_open;
	long recno;               /* records delivered from the current input */
	char where[600];
	int64_t size_total;       /* bytes of all inputs, -1 when one is not a file */
	int64_t size_read;        /* bytes read from them so far */
};

aim_reader *aim_reader_open(const char *const *paths, int npaths)
{
	aim_reader *rd = calloc(1, sizeof *rd);
	if (!rd) {
		aim_error("out of memory");
		return NULL;
	}
	static const char *const stdin_only[] = {"-"};
	if (npaths == 0) {
		paths = stdin_only;
		npaths = 1;
	}
	rd->paths = calloc((size_t)npaths, sizeof *rd->paths);
	rd->in_cap = 1 << 17;
	rd->in = malloc(rd->in_cap);
	rd->ds = ZSTD_createDStream();
	if (!rd->paths || !rd->in || !rd->ds) {
		aim_reader_close(rd);
		aim_error("out of memory");
		return NULL;
	}
	rd->npaths = npaths;
	for (int i = 0; i < npaths; i++) {
		rd->paths[i] = strdup(paths[i]);
		if (!rd->paths[i]) {
			aim_reader_close(rd);
			aim_error("out of memory");
			return NULL;
		}
	}
	/* The size of the input, for progress, when every input is a file. */
	for (int i = 0; i < npaths && rd->size_total >= 0; i++) {
		struct stat st;
		int ok = strcmp(paths[i], "-") ? stat(paths[i], &st) : fstat(STDIN_FILENO, &st);
		rd->size_total = ok == 0 && S_ISREG(st.st_mode) ? rd->size_total + st.st_size : -1;
	}
	rd->cur = -1;
	return rd;
}

static const char *input_name(const aim_reader *rd)
{
	if (rd->cur < 0 || rd->cur >= rd->npaths)
		return "stream";
	return strcmp(rd->paths[rd->cur], "-") ? rd->paths[rd->cur] : "standard input";
}

double aim_reader_fraction(const aim_reader *rd)
{
	if (rd->size_total < 0)
		return -1;
	if (rd->size_total == 0)
		return 1;
	int64_t used = rd->size_read - (int64_t)(rd->in_len - rd->in_pos);
	double f = (double)used / (double)rd->size_total;
	return f < 0 ? 0 : f > 1 ? 1 : f;
}

const char *aim_reader_where(const aim_reader *rd)
{
	aim_reader *w = (aim_reader *)rd;
	snprintf(w->where, sizeof w->where, "%s record %ld", input_name(rd),
		 rd->recno > 0 ? rd->recno - 1 : 0);
	return w->where;
}

static void close_input(aim_reader *rd)
{
	if (rd->fp && rd->fp != stdin)
		fclose(rd->fp);
	rd->fp = NULL;
}

static int open_next_input(aim_reader *rd)
{
	close_input(rd);
	rd->cur++;
	if (rd->cur >= rd->npaths)
		return 0;
	const char *p = rd->paths[rd->cur];
	if (!strcmp(p, "-")) {
		rd->fp = stdin;
	} else {
		rd->fp = fopen(p, "rb");
		if (!rd->fp)
			return aim_error("%s: %s", p, strerror(errno));
	}
	rd->mode = MODE_UNKNOWN;
	rd->eof = 0;
	rd->in_pos = rd->in_len = 0;
	rd->out_len = rd->out_ready = 0;
	rd->frame_open = 0;
	rd->recno = 0;
	ZSTD_DCtx_reset(rd->ds, ZSTD_reset_session_only);
	return 1;
}

static int ensure_out(aim_reader *rd, size_t need)
{
	if (need <= rd->out_cap)
		return 0;
	size_t cap = rd->out_cap ? rd->out_cap : 1 << 17;
	while (cap < need)
		cap *= 2;
	unsigned char *o = realloc(rd->out, cap);
	if (!o)
		return aim_error("%s: out of memory (record of %zu bytes)", input_name(rd), need);
	rd->out = o;
	rd->out_cap = cap;
	return 0;
}

/* Whatever bytes are available now (at least one, or 0 at the end): read(2),
 * not fread, because fread waits for a full buffer and a client that sends
 * one record down a pipe and waits for the answer would wait forever. */
static ssize_t read_some(aim_reader *rd, void *buf, size_t n)
{
	for (;;) {
		ssize_t got = read(fileno(rd->fp), buf, n);
		if (got > 0)
			rd->size_read += got;
		if (got >= 0 || errno != EINTR)
			return got;
	}
}

/* Read more input and decode it into out. Returns 1 progress, 0 at EOF. */
static int pump(aim_reader *rd)
{
	if (rd->in_pos == rd->in_len) {
		if (rd->eof)
			return 0;
		ssize_t n = read_some(rd, rd->in, rd->in_cap);
		if (n < 0)
			return aim_error("%s: read error: %s", input_name(rd), strerror(errno));
		if (n == 0) {
			rd->eof = 1;
			return 0;
		}
		rd->in_pos = 0;
		rd->in_len = (size_t)n;
	}
	if (rd->mode == MODE_UNKNOWN) {
		/* Need four bytes to tell zstd from raw. */
		while (rd->in_len - rd->in_pos < 4 && !rd->eof) {
			memmove(rd->in, rd->in + rd->in_pos, rd->in_len - rd->in_pos);
			rd->in_len -= rd->in_pos;
			rd->in_pos = 0;
			ssize_t n = read_some(rd, rd->in + rd->in_len, rd->in_cap - rd->in_len);
			if (n < 0)
				return aim_error("%s: read error: %s", input_name(rd), strerror(errno));
			if (n == 0)
				rd->eof = 1;
			rd->in_len += (size_t)n;
		}
		const unsigned char *b = rd->in + rd->in_pos;
		uint32_t magic = rd->in_len - rd->in_pos >= 4
					 ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24
					 : 0;
		rd->mode = magic == ZSTD_MAGIC ? MODE_ZSTD : MODE_RAW;
	}
	if (rd->mode == MODE_RAW) {
		size_t n = rd->in_len - rd->in_pos;
		if (ensure_out(rd, rd->out_len + n))
			return AIM_ERR;
		memcpy(rd->out + rd->out_len, rd->in + rd->in_pos, n);
		rd->out_len += n;
		rd->out_ready = rd->out_len;
		rd->in_pos = rd->in_len;
		return 1;
	}
	ZSTD_inBuffer ib = {rd->in, rd->in_len, rd->in_pos};
	while (ib.pos < ib.size) {
		if (ensure_out(rd, rd->out_len + ZSTD_DStreamOutSize()))
			return AIM_ERR;
		ZSTD_outBuffer ob = {rd->out, rd->out_cap, rd->out_len};
		size_t ret = ZSTD_decompressStream(rd->ds, &ob, &ib);
		rd->out_len = ob.pos;
		if (ZSTD_isError(ret))
			return aim_error("%s record %ld: corrupt zstd frame: %s", input_name(rd),
					 rd->recno, ZSTD_getErrorName(ret));
		rd->frame_open = ret != 0;
		if (ret == 0) { /* frame done, checksum verified: hand its records out first */
			rd->out_ready = rd->out_len;
			break;
		}
	}
	rd->in_pos = ib.pos;
	return 1;
}

/* Try to cut one complete record from the verified prefix of out. */
static int take_record(aim_reader *rd, aim_record *r)
{
	size_t have = rd->out_ready;
	if (have < 8)
		return 0;
	char what[600];
	snprintf(what, sizeof what, "%s record %ld", input_name(rd), rd->recno);
	uint64_t hlen, dlen;
	if (aim_record_header_len(rd->out, &hlen, what)) {
		if (rd->mode == MODE_RAW && rd->recno == 0)
			return aim_error("%s: not an aim tensor stream (neither a zstd frame nor a "
					 "safetensors header)", input_name(rd));
		return AIM_ERR;
	}
	if (have < 8 + hlen)
		return 0;
	if (aim_record_data_len((const char *)rd->out + 8, hlen, &dlen, what))
		return AIM_ERR;
	if (dlen > SIZE_MAX - 8 - hlen)
		return aim_error("%s: data section too large", what);
	size_t total = 8 + hlen + dlen;
	if (have < total)
		return 0;
	void *buf = malloc(total ? total : 1);
	if (!buf)
		return aim_error("%s: out of memory (%zu bytes)", what, total);
	memcpy(buf, rd->out, total);
	memmove(rd->out, rd->out + total, rd->out_len - total);
	rd->out_len -= total;
	rd->out_ready -= total;
	if (aim_record_parse(r, buf, total, 1, what))
		return AIM_ERR;
	rd->recno++;
	return 1;
}

int aim_reader_next(aim_reader *rd, aim_record *r)
{
	if (rd->failed)
		return AIM_ERR;
	aim_record_clear(r);
	for (;;) {
		if (rd->fp) {
			int got = take_record(rd, r);
			if (got)
				return got < 0 ? (rd->failed = 1, AIM_ERR) : 1;
			int p = pump(rd);
			if (p < 0) {
				rd->failed = 1;
				return AIM_ERR;
			}
			if (p > 0)
				continue;
			/* End of this input. */
			if (rd->out_len || rd->frame_open) {
				rd->failed = 1;
				return aim_error("%s record %ld: stream ends inside a record (truncated)",
						 input_name(rd), rd->recno);
			}
		}
		int o = open_next_input(rd);
		if (o < 0) {
			rd->failed = 1;
			return AIM_ERR;
		}
		if (o == 0)
			return 0;
	}
}

int aim_reader_rewindable(const aim_reader *rd)
{
	for (int i = 0; i < rd->npaths; i++)
		if (!strcmp(rd->paths[i], "-"))
			return 0;
	return 1;
}

int aim_reader_rewind(aim_reader *rd)
{
	if (!aim_reader_rewindable(rd))
		return aim_error("standard input cannot be read twice");
	close_input(rd);
	rd->cur = -1;
	rd->failed = 0;
	rd->size_read = 0;
	return 0;
}

void aim_reader_close(aim_reader *rd)
{
	if (!rd)
		return;
	close_input(rd);
	for (int i = 0; rd->paths && i < rd->npaths; i++)
		free(rd->paths[i]);
	free(rd->paths);
	free(rd->in);
	free(rd->out);
	ZSTD_freeDStream(rd->ds);
	free(rd);
}

/* ===== writer ============================================================= */

struct aim_writer {
	aim_outfile out;
	ZSTD_CCtx *cctx;
	int level;
	void *cbuf, *sbuf; /* compressed and serialised records, reused */
	size_t ccap, scap;
};

aim_writer *aim_writer_open(const char *path, int level, int workers)
{
	aim_writer *w = calloc(1, sizeof *w);
	if (!w) {
		aim_error("out of memory");
		return NULL;
	}
	if (aim_out_open(&w->out, path, 1)) {
		free(w);
		return NULL;
	}
	w->level = level;
	if (level > 0) {
		w->cctx = ZSTD_createCCtx();
		if (!w->cctx) {
			aim_out_abort(&w->out);
			free(w);
			aim_error("out of memory");
			return NULL;
		}
		ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
		ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
		if (workers > 0)
			ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_nbWorkers, workers);
	}
	return w;
}

int aim_writer_write(aim_writer *w, const aim_record *r)
{
	const char *name = w->out.path ? w->out.path : "standard output";
	size_t len;
	if (aim_record_serialize_into(r, &w->sbuf, &w->scap, &len))
		return AIM_ERR;
	void *buf = w->sbuf;
	int rc;
	if (!w->cctx) {
		rc = aim_write_all(w->out.fp, buf, len, name);
	} else {
		size_t bound = ZSTD_compressBound(len);
		if (bound > w->ccap) {
			free(w->cbuf);
			w->cbuf = malloc(bound);
			w->ccap = w->cbuf ? bound : 0;
			if (!w->cbuf)
				return aim_error("out of memory");
		}
		size_t clen = ZSTD_compress2(w->cctx, w->cbuf, w->ccap, buf, len);
		if (ZSTD_isError(clen))
			return aim_error("%s: zstd: %s", name, ZSTD_getErrorName(clen));
		rc = aim_write_all(w->out.fp, w->cbuf, clen, name);
	}
	if (!rc && fflush(w->out.fp) != 0)
		rc = errno == EPIPE ? AIM_EPIPE : aim_error("%s: write failed: %s", name, strerror(errno));
	return rc;
}

static void writer_free(aim_writer *w)
{
	ZSTD_freeCCtx(w->cctx);
	free(w->cbuf);
	free(w->sbuf);
	free(w);
}

int aim_writer_close(aim_writer *w)
{
	int rc = aim_out_commit(&w->out);
	writer_free(w);
	return rc;
}

void aim_writer_abort(aim_writer *w)
{
	if (!w)
		return;
	aim_out_abort(&w->out);
	writer_free(w);
}

/* ===== re-batching ======================================================== */

int64_t aim_record_batch(const aim_record *r, const char *what)
{
	int64_t b = -1;
	for (int i = 0; i < r->n; i++) {
		const aim_tensor *t = &r->t[i];
		if (t->ndim < 1)
			return aim_error("%s: tensor '%s' has no batch dimension", what, t->name);
		if (b >= 0 && t->shape[0] != b)
			return aim_error("%s: tensor '%s' has batch %lld, others %lld", what, t->name,
					 (long long)t->shape[0], (long long)b);
		b = t->shape[0];
	}
	return b < 0 ? 0 : b;
}

struct aim_batcher {
	aim_reader *rd;
	int batch;
	aim_record cur;
	int64_t cur_b, off;
	int have;
	json_t *cur_names;
};

aim_batcher *aim_batcher_new(aim_reader *rd, int batch)
{
	aim_batcher *b = calloc(1, sizeof *b);
	if (!b) {
		aim_error("out of memory");
		return NULL;
	}
	b->rd = rd;
	b->batch = batch > 0 ? batch : 1;
	aim_record_init(&b->cur);
	return b;
}

void aim_batcher_free(aim_batcher *b)
{
	if (!b)
		return;
	aim_record_free(&b->cur);
	json_decref(b->cur_names);
	free(b);
}

static int load_next(aim_batcher *b)
{
	for (;;) {
		int rc = aim_reader_next(b->rd, &b->cur);
		if (rc <= 0)
			return rc;
		char what[640];
		snprintf(what, sizeof what, "%s", aim_reader_where(b->rd));
		int64_t n = aim_record_batch(&b->cur, what);
		if (n < 0)
			return AIM_ERR;
		if (n == 0)
			continue; /* metadata-only record: nothing to batch */
		json_decref(b->cur_names);
		b->cur_names = NULL;
		const char *names = aim_record_get_meta(&b->cur, "aim.names");
		if (names) {
			b->cur_names = json_loads(names, 0, NULL);
			if (!json_is_array(b->cur_names) || json_array_size(b->cur_names) != (size_t)n)
				return aim_error("%s: aim.names is not a list of %lld names", what,
						 (long long)n);
		}
		b->cur_b = n;
		b->off = 0;
		b->have = 1;
		return 1;
	}
}

int aim_batcher_next(aim_batcher *b, aim_record *out)
{
	aim_record_clear(out);
	int64_t got = 0;
	json_t *names = json_array();
	int any_names = 0;
	const char *epoch = NULL;
	char epoch_buf[32] = "";
	while (got < b->batch) {
		if (!b->have || b->off >= b->cur_b) {
			b->have = 0;
			int rc = load_next(b);
			if (rc < 0) {
				json_decref(names);
				return AIM_ERR;
			}
			if (rc == 0)
				break;
		}
		/* Never mix two epochs of a looping producer in one batch. */
		const char *e = aim_record_get_meta(&b->cur, "aim.epoch");
		if (got > 0 && (epoch ? !e || strcmp(e, epoch_buf) : e != NULL))
			break;
		if (e) {
			snprintf(epoch_buf, sizeof epoch_buf, "%s", e);
			epoch = epoch_buf;
		}
		int64_t take = b->cur_b - b->off;
		if (take > b->batch - got)
			take = b->batch - got;
		if (got > 0 && out->n != b->cur.n)
			goto mismatch;
		for (int i = 0; i < b->cur.n; i++) {
			const aim_tensor *s = &b->cur.t[i];
			aim_tensor *d = aim_record_find(out, s->name);
			if (!d) {
				if (got > 0)
					goto mismatch;
				int64_t shape[AIM_MAX_DIMS];
				memcpy(shape, s->shape, sizeof shape);
				shape[0] = b->batch;
				d = aim_record_add(out, s->name, s->dtype, s->ndim, shape, NULL);
				if (!d) {
					json_decref(names);
					return AIM_ERR;
				}
			} else if (d->dtype != s->dtype || d->ndim != s->ndim ||
				   memcmp(d->shape + 1, s->shape + 1, (size_t)(s->ndim - 1) * sizeof *s->shape)) {
				goto mismatch;
			}
			size_t row = s->nbytes / (size_t)b->cur_b;
			memcpy((char *)d->data + (size_t)got * row, (char *)s->data + (size_t)b->off * row,
			       (size_t)take * row);
		}
		for (int64_t k = 0; k < take; k++) {
			json_t *nm = b->cur_names ? json_array_get(b->cur_names, (size_t)(b->off + k)) : NULL;
			json_array_append(names, nm ? nm : json_string(""));
			if (!nm)
				json_decref(json_array_get(names, json_array_size(names) - 1));
			else
				any_names = 1;
		}
		for (int i = 0; i < b->cur.nmeta; i++)
			if (strcmp(b->cur.meta[i].key, "aim.names"))
				aim_record_set_meta(out, b->cur.meta[i].key, b->cur.meta[i].value);
		got += take;
		b->off += take;
	}
	if (got == 0) {
		json_decref(names);
		return 0;
	}
	for (int i = 0; i < out->n; i++) {
		aim_tensor *d = &out->t[i];
		d->nbytes = d->nbytes / (size_t)b->batch * (size_t)got;
		d->shape[0] = got;
	}
	if (any_names) {
		char *txt = json_dumps(names, JSON_COMPACT | JSON_ENSURE_ASCII);
		if (txt)
			aim_record_set_meta(out, "aim.names", txt);
		free(txt);
	}
	json_decref(names);
	return 1;
mismatch:
	json_decref(names);
	return aim_error("%s: tensors differ from the previous records (names, dtypes or shapes)",
			 aim_reader_where(b->rd));
}
