/* aim-tensor: inspect, slice, concatenate and export tensor streams. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "model_load.h"
#include "safetensors.h"
#include "stream.h"
#include "tune_io.h"

static const char usage[] =
	"Usage: aim-tensor COMMAND [options] [FILE...]\n"
	"Inspect and reshape aim tensor streams (and safetensors files).\n"
	"\n"
	"Commands:\n"
	"  info [FILE...]              records, tensors, dtypes, shapes and metadata\n"
	"  head [-n N] [FILE...]       the first N records (default 1) as a stream\n"
	"  cat [FILE...]               concatenate streams, optionally re-batched or sliced\n"
	"  to-npy -o DIR [FILE...]     each tensor, all records joined, as DIR/NAME.npy\n"
	"  convert IN -o OUT           any loadable model -> safetensors with aim.config\n"
	"  merge MODEL ADAPTER -o OUT  a LoRA adapter directory folded into the weights ->\n"
	"                              a plain model (F32 safetensors with aim.config)\n"
	"\n"
	"Options:\n"
	"  -o, --output FILE   output (stream commands: default stdout; to-npy: a directory)\n"
	"  -n, --records N     head: number of records\n"
	"      --batch B       cat: re-batch into records of B samples\n"
	"      --skip N        cat: drop the first N samples\n"
	"      --count N       cat: keep at most N samples\n"
	"      --level L       zstd level of the output (0 = uncompressed, default 3)\n"
	"  -t, --tensor NAME   to-npy: export only this tensor (repeatable)\n"
	"      --json          info: one JSON object per record on stdout\n"
	"      --head FILE     convert, merge: probe-head checkpoint to include\n"
	"      --arch NAME     convert, merge: architecture preset for bare .pth files\n"
	"      --dtype T       convert: f32 (default), f16 or bf16 weights\n"
	"  -q, --quiet         no summary on stderr\n"
	"      --threads N     worker threads\n"
	"      --help          this help\n"
	"      --version       version and backends\n"
	"\n"
	"Exit status: 0 success, 1 runtime failure, 2 usage error.\n";

enum { OPT_BATCH = AIM_OPT_FIRST_TOOL, OPT_SKIP, OPT_COUNT, OPT_LEVEL, OPT_JSON, OPT_HEAD, OPT_ARCH, OPT_DTYPE };

static struct {
	const char *output, *head, *arch;
	long long records, batch, skip, count;
	int level, json;
	aim_dtype dtype;
	const char *only[64];
	int nonly;
} opt = {.records = 1, .count = -1, .level = 3, .dtype = AIM_F32};

/* merge MODEL ADAPTER: W += (alpha/r)·B·A, written as a plain model. */
static void merge(const char *model, const char *adapter)
{
	aim_load_opts lo = {.arch = opt.arch, .head = opt.head};
	aim_model *m;
	if (aim_model_load(&m, model, &lo) < 0)
		aim_die_status(AIM_ERR);
	aim_tune *t;
	char warn[1024];
	if (aim_tune_load(&t, adapter, m, warn, sizeof warn) < 0)
		aim_die_status(AIM_ERR);
	if (warn[0])
		aim_warn("%s", warn);
	if (t->cfg.kind != AIM_TUNE_LORA)
		aim_die("%s: a %s adapter cannot be merged into the weights (apply it with --adapter)",
			adapter, aim_tune_kind_name(t->cfg.kind));
	if (aim_lora_merge(m, t) < 0)
		aim_die_status(AIM_ERR);
	aim_record r;
	aim_record_init(&r);
	if (aim_model_to_record(m, &r) < 0 || aim_record_set_meta(&r, "aim.merged_adapter", adapter) ||
	    aim_st_write(opt.output, &r) < 0)
		aim_die_status(AIM_ERR);
	aim_info("wrote %s (%s merged, %zu LoRA values)", opt.output, adapter, aim_tune_count(t));
	aim_record_free(&r);
	aim_tune_free(t);
	aim_model_free(m);
}

static void print_info(aim_reader *rd)
{
	aim_record r;
	aim_record_init(&r);
	long recs = 0;
	long long samples = 0;
	int rc;
	while ((rc = aim_reader_next(rd, &r)) > 0) {
		if (opt.json) {
			json_t *o = json_object(), *ts = json_object(), *m = json_object();
			for (int i = 0; i < r.n; i++) {
				json_t *sh = json_array();
				for (int d = 0; d < r.t[i].ndim; d++)
					json_array_append_new(sh, json_integer(r.t[i].shape[d]));
				json_object_set_new(ts, r.t[i].name,
						    json_pack("{s:s,s:o}", "dtype", aim_dtype_name(r.t[i].dtype), "shape", sh));
			}
			for (int i = 0; i < r.nmeta; i++)
				json_object_set_new(m, r.meta[i].key, json_string(r.meta[i].value));
			json_object_set_new(o, "record", json_integer(recs));
			json_object_set_new(o, "tensors", ts);
			json_object_set_new(o, "metadata", m);
			char *s = json_dumps(o, JSON_COMPACT);
			puts(s);
			free(s);
			json_decref(o);
		} else {
			printf("record %ld\n", recs);
			for (int i = 0; i < r.n; i++) {
				char sh[128];
				printf("  %-40s %-5s %s\n", r.t[i].name, aim_dtype_name(r.t[i].dtype),
				       aim_shape_str(r.t[i].ndim, r.t[i].shape, sh, sizeof sh));
			}
			for (int i = 0; i < r.nmeta; i++) {
				const char *v = r.meta[i].value;
				int n = (int)strlen(v);
				printf("  @%s = %.*s%s\n", r.meta[i].key, n > 200 ? 200 : n, v, n > 200 ? "..." : "");
			}
		}
		int64_t b = r.n && r.t[0].ndim ? r.t[0].shape[0] : 0;
		samples += b;
		recs++;
	}
	if (rc < 0)
		aim_die_status(rc);
	if (fflush(stdout) || ferror(stdout)) {
		if (errno == EPIPE)
			exit(AIM_EXIT_OK); /* the reader downstream has what it wanted */
		aim_die("standard output: write failed: %s", strerror(errno));
	}
	aim_info("%ld records, %lld samples (first dimension of the first tensor)", recs, samples);
	aim_record_free(&r);
}

/* Copy records to the writer: all of them, the first N, or re-batched and
 * sliced by samples. */
static void copy_stream(aim_reader *rd, int head_only)
{
	aim_writer *w = aim_writer_open(opt.output, opt.level, 0);
	if (!w)
		aim_die_status(AIM_ERR);
	aim_record r;
	aim_record_init(&r);
	int rc = 0;
	long long written = 0, seen = 0;
	if (head_only || (!opt.batch && !opt.skip && opt.count < 0)) {
		while ((head_only ? written < opt.records : 1) && (rc = aim_reader_next(rd, &r)) > 0) {
			if ((rc = aim_writer_write(w, &r)))
				break;
			written++;
		}
	} else {
		/* Sample-level slicing goes through the re-batcher. */
		aim_batcher *b = aim_batcher_new(rd, opt.batch ? (int)opt.batch : 256);
		while (b && (opt.count < 0 || written < opt.count) && (rc = aim_batcher_next(b, &r)) > 0) {
			int64_t n = aim_record_batch(&r, "batch");
			int64_t lo = seen < opt.skip ? opt.skip - seen : 0;
			int64_t hi = n;
			if (opt.count >= 0 && written + (hi - lo) > opt.count)
				hi = lo + (opt.count - written);
			seen += n;
			if (lo >= hi)
				continue;
			if (lo > 0 || hi < n) {
				/* Narrow every tensor (and the names) to rows lo..hi. */
				for (int i = 0; i < r.n; i++) {
					aim_tensor *t = &r.t[i];
					size_t row = t->nbytes / (size_t)n;
					memmove(t->data, (char *)t->data + row * (size_t)lo, row * (size_t)(hi - lo));
					t->shape[0] = hi - lo;
					t->nbytes = row * (size_t)(hi - lo);
				}
				const char *names = aim_record_get_meta(&r, "aim.names");
				json_t *a = names ? json_loads(names, 0, NULL) : NULL;
				if (json_is_array(a)) {
					json_t *s = json_array();
					for (int64_t k = lo; k < hi; k++)
						json_array_append(s, json_array_get(a, (size_t)k));
					char *txt = json_dumps(s, JSON_COMPACT | JSON_ENSURE_ASCII);
					aim_record_set_meta(&r, "aim.names", txt);
					free(txt);
					json_decref(s);
				}
				json_decref(a);
			}
			if ((rc = aim_writer_write(w, &r)))
				break;
			written += hi - lo;
		}
		if (!b)
			rc = AIM_ERR;
		aim_batcher_free(b);
	}
	aim_record_free(&r);
	if (rc < 0) {
		aim_writer_abort(w);
		aim_die_status(rc);
	}
	if ((rc = aim_writer_close(w)))
		aim_die_status(rc);
}

/* .npy v1.0 with a fixed 128-byte header, rewritten with the final row
 * count once every record has been appended. */
typedef struct {
	char name[256];
	aim_outfile out;
	aim_dtype dtype;
	int ndim;
	int64_t shape[AIM_MAX_DIMS];
	int64_t rows;
} npy_out;

static const char *npy_descr(aim_dtype t)
{
	switch (t) {
	case AIM_F32: return "<f4";
	case AIM_F16: return "<f2";
	case AIM_U8: return "|u1";
	case AIM_I64: return "<i8";
	case AIM_I32: return "<i4";
	default: return "<f4"; /* BF16 has no numpy dtype: written as F32 */
	}
}

static void npy_header(npy_out *o, char hdr[128])
{
	char shape[256] = "(";
	size_t n = 1;
	for (int d = 0; d < o->ndim; d++)
		n += (size_t)snprintf(shape + n, sizeof shape - n, "%lld,%s",
				      (long long)(d ? o->shape[d] : o->rows), d + 1 < o->ndim ? " " : "");
	snprintf(shape + n, sizeof shape - n, ")");
	memset(hdr, ' ', 128);
	memcpy(hdr, "\x93NUMPY\x01\x00\x76\x00", 10); /* header length 118 */
	int w = snprintf(hdr + 10, 118, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
			 npy_descr(o->dtype), shape);
	hdr[10 + w] = ' ';
	hdr[127] = '\n';
}

static int wanted(const char *name)
{
	if (!opt.nonly)
		return 1;
	for (int i = 0; i < opt.nonly; i++)
		if (!strcmp(opt.only[i], name))
			return 1;
	return 0;
}

static void to_npy(aim_reader *rd)
{
	if (!opt.output)
		aim_usage_error("to-npy needs -o DIR");
	npy_out *outs = NULL;
	int nouts = 0;
	aim_record r;
	aim_record_init(&r);
	int rc;
	long rec = 0;
	while ((rc = aim_reader_next(rd, &r)) > 0) {
		for (int i = 0; i < r.n; i++) {
			aim_tensor *t = &r.t[i];
			if (!wanted(t->name))
				continue;
			npy_out *o = NULL;
			for (int k = 0; k < nouts; k++)
				if (!strcmp(outs[k].name, t->name))
					o = &outs[k];
			if (!o) {
				if (rec > 0)
					aim_die("%s: tensor '%s' is not in the first record", aim_reader_where(rd), t->name);
				outs = realloc(outs, (size_t)(nouts + 1) * sizeof *outs);
				if (!outs)
					aim_die("out of memory");
				o = &outs[nouts++];
				memset(o, 0, sizeof *o);
				snprintf(o->name, sizeof o->name, "%s", t->name);
				o->dtype = t->dtype;
				o->ndim = t->ndim ? t->ndim : 1;
				memcpy(o->shape, t->shape, sizeof o->shape);
				if (!t->ndim)
					o->shape[0] = 1;
				char path[4096];
				snprintf(path, sizeof path, "%s/%s.npy", opt.output, t->name);
				for (char *p = path + strlen(opt.output) + 1; *p; p++)
					if (*p == '/')
						*p = '_';
				if (aim_out_open(&o->out, path, 1))
					aim_die_status(AIM_ERR);
				char hdr[128];
				npy_header(o, hdr);
				if (aim_write_all(o->out.fp, hdr, 128, path))
					aim_die_status(AIM_ERR);
			} else if (t->dtype != o->dtype || t->ndim != o->ndim ||
				   (t->ndim && memcmp(t->shape + 1, o->shape + 1, (size_t)(t->ndim - 1) * sizeof *t->shape))) {
				aim_die("%s: tensor '%s' changes dtype or shape between records", aim_reader_where(rd), t->name);
			}
			size_t n = (size_t)aim_tensor_numel(t);
			if (t->dtype == AIM_BF16) {
				float *f = malloc(n * sizeof *f + 1);
				if (!f)
					aim_die("out of memory");
				aim_to_f32(f, t);
				rc = aim_write_all(o->out.fp, f, n * sizeof *f, o->name);
				free(f);
			} else {
				rc = aim_write_all(o->out.fp, t->data, t->nbytes, o->name);
			}
			if (rc)
				aim_die_status(rc);
			o->rows += t->ndim ? t->shape[0] : 1;
		}
		rec++;
	}
	if (rc < 0)
		aim_die_status(rc);
	for (int k = 0; k < nouts; k++) {
		char hdr[128];
		npy_header(&outs[k], hdr);
		if (fseek(outs[k].out.fp, 0, SEEK_SET) || fwrite(hdr, 1, 128, outs[k].out.fp) != 128)
			aim_die("%s: cannot rewrite the .npy header", outs[k].name);
		if ((rc = aim_out_commit(&outs[k].out)))
			aim_die_status(rc);
		aim_info("%s.npy: %lld rows", outs[k].name, (long long)outs[k].rows);
	}
	if (!nouts)
		aim_die("no tensors to export");
	free(outs);
	aim_record_free(&r);
}

int main(int argc, char **argv)
{
	aim_prog_init("aim-tensor", usage);
	static const struct option longopts[] = {
		AIM_COMMON_LONGOPTS,
		{"output", required_argument, 0, 'o'},
		{"records", required_argument, 0, 'n'},
		{"tensor", required_argument, 0, 't'},
		{"batch", required_argument, 0, OPT_BATCH},
		{"skip", required_argument, 0, OPT_SKIP},
		{"count", required_argument, 0, OPT_COUNT},
		{"level", required_argument, 0, OPT_LEVEL},
		{"json", no_argument, 0, OPT_JSON},
		{"head", required_argument, 0, OPT_HEAD},
		{"arch", required_argument, 0, OPT_ARCH},
		{"dtype", required_argument, 0, OPT_DTYPE},
		{0, 0, 0, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "o:n:t:" AIM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'o': opt.output = optarg; break;
		case 'n': opt.records = aim_opt_int("--records", optarg, 0, 1LL << 40); break;
		case 't':
			if (opt.nonly == 64)
				aim_usage_error("--tensor: at most 64");
			opt.only[opt.nonly++] = optarg;
			break;
		case OPT_BATCH: opt.batch = aim_opt_int("--batch", optarg, 1, 1 << 24); break;
		case OPT_SKIP: opt.skip = aim_opt_int("--skip", optarg, 0, 1LL << 50); break;
		case OPT_COUNT: opt.count = aim_opt_int("--count", optarg, 0, 1LL << 50); break;
		case OPT_LEVEL: opt.level = (int)aim_opt_int("--level", optarg, 0, 22); break;
		case OPT_JSON: opt.json = 1; break;
		case OPT_HEAD: opt.head = optarg; break;
		case OPT_ARCH: opt.arch = optarg; break;
		case OPT_DTYPE:
			opt.dtype = aim_dtype_parse_lower(optarg);
			if (opt.dtype != AIM_F32 && opt.dtype != AIM_F16 && opt.dtype != AIM_BF16)
				aim_usage_error("--dtype: '%s' is not f32, f16 or bf16", optarg);
			break;
		default: aim_common_option(c, optarg);
		}
	}
	if (optind >= argc)
		aim_usage_error("missing COMMAND (info, head, cat, to-npy, convert, merge)");
	const char *cmd = argv[optind++];
	aim_apply_threads();
	if (!strcmp(cmd, "convert")) {
		if (optind != argc - 1)
			aim_usage_error("convert takes one input model");
		if (!opt.output)
			aim_usage_error("convert needs -o OUT.safetensors");
		int rc = aim_model_convert(argv[optind], opt.head, opt.output, opt.arch, opt.dtype);
		if (rc)
			aim_die_status(rc);
		aim_info("wrote %s", opt.output);
		return 0;
	}
	if (!strcmp(cmd, "merge")) {
		if (optind != argc - 2)
			aim_usage_error("merge takes a model and an adapter directory");
		if (!opt.output)
			aim_usage_error("merge needs -o OUT.safetensors");
		if (opt.dtype != AIM_F32)
			aim_usage_error("merge writes F32 weights (convert the result for --dtype)");
		merge(argv[optind], argv[optind + 1]);
		return 0;
	}
	aim_reader *rd = aim_reader_open((const char *const *)argv + optind, argc - optind);
	if (!rd)
		aim_die_status(AIM_ERR);
	if (!strcmp(cmd, "info"))
		print_info(rd);
	else if (!strcmp(cmd, "head"))
		copy_stream(rd, 1);
	else if (!strcmp(cmd, "cat"))
		copy_stream(rd, 0);
	else if (!strcmp(cmd, "to-npy"))
		to_npy(rd);
	else
		aim_usage_error("unknown command '%s'", cmd);
	aim_reader_close(rd);
	return 0;
}
