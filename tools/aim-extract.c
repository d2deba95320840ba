/* aim-extract: features of a frozen AIM trunk.
 *
 * Reads a patches stream, runs the trunk over each batch, and writes the
 * chosen blocks' outputs (averaged, as the published probes take them, or
 * stacked), optionally normalised by the post-trunk LayerNorm and pooled.
 * Labels, ids, names and classes pass through. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "model_load.h"
#include "patches.h"
#include "probe_head.h"
#include "stream.h"
#include "train_ckpt.h"
#include "tune_io.h"

static const char usage[] =
	"Usage: aim-extract -m MODEL [options] [IN...]\n"
	"Features of a frozen AIM v1 or AIMv2 trunk: reads a patches stream (files or\n"
	"standard input), writes a features stream.\n"
	"\n"
	"Model:\n"
	"  -m, --model MODEL    .safetensors file, Hugging Face directory (config.json +\n"
	"                       model.safetensors or pytorch_model.bin; AIMv2 in the\n"
	"                       ml-aim, transformers or timm layout), or a PyTorch\n"
	"                       backbone checkpoint (.pth)\n"
	"  --head FILE          probe head (.pth or .safetensors), e.g. the released\n"
	"                       *_head_best_layers.pth; needed by --pool attn\n"
	"  --adapter DIR        adapt the trunk (aim-adapter(5)): LoRA merged into the\n"
	"                       weights at load; bottleneck adapters and prompts applied\n"
	"  --arch NAME          architecture when the file carries none: aim-600M,\n"
	"                       aim-1B, aim-3B, aim-7B, aimv2-{large,huge,1B,3B}-patch14-\n"
	"                       {224,336,448}, aimv2-large-patch14-native\n"
	"  --device DEV         cpu (default), cuda, cuda:N (GPU N) or auto (CUDA when\n"
	"                       usable, else the CPU)\n"
	"  --precision P        matrix products in fp32 (default), tf32 (GPU only) or\n"
	"                       bf16 (fp32 accumulation; GPU, or CPU with native bf16)\n"
	"Features:\n"
	"  --layers LIST        0-based blocks: 3, 0,4, 12-17, last (the last 6), best\n"
	"                       (published best 6), all; default: the model's probe layers\n"
	"  --stack              keep the blocks separate ([B, L, K, D]) instead of averaging\n"
	"  --norm               apply the post-trunk norm (AIM v1 LayerNorm, AIMv2 RMSNorm)\n"
	"                       to each block's output; with the last block: the\n"
	"                       published AIMv2 encoder's output\n"
	"  --mask none|causal   attention: bidirectional (default), or causal in the\n"
	"                       order the model was pretrained in (tokens come in it)\n"
	"  --pool none|mean|attn  per-patch features (none, default), mean over patches,\n"
	"                       or the probe head's attention pooling (needs the head)\n"
	"  --dtype f32|f16|bf16 output dtype (default f32)\n"
	"  --batch N            images per forward pass (default 16)\n"
	"  --shard I/N          process only samples whose position in the input is I mod N\n"
	"Output:\n"
	"  -o, --output FILE    output file (default standard output)\n"
	"Common:\n"
	"  --threads N          threads for GEMMs and loops (default: all cores)\n"
	"  -q, --quiet          no progress messages\n"
	"  -v, --verbose        more messages\n"
	"  --help, --version\n";

enum {
	OPT_HEAD = AIM_OPT_FIRST_TOOL, OPT_ARCH, OPT_DEVICE, OPT_PRECISION, OPT_LAYERS, OPT_STACK, OPT_NORM,
	OPT_POOL, OPT_DTYPE, OPT_BATCH, OPT_SHARD, OPT_MASK, OPT_ADAPTER,
};

enum { POOL_NONE, POOL_MEAN, POOL_ATTN };
static const char *pool_names[] = {"none", "mean", "attn"};

typedef struct {
	const char *model, *head, *arch, *device, *precision, *layers, *output, *adapter;
	int stack, norm, pool, batch, shard_i, shard_n, causal;
	aim_dtype dtype;
	char **inputs;
	int ninputs;
} options;

static void parse_options(options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		AIM_COMMON_LONGOPTS,
		{"model", required_argument, 0, 'm'},
		{"head", required_argument, 0, OPT_HEAD},
		{"arch", required_argument, 0, OPT_ARCH},
		{"device", required_argument, 0, OPT_DEVICE},
		{"precision", required_argument, 0, OPT_PRECISION},
		{"layers", required_argument, 0, OPT_LAYERS},
		{"stack", no_argument, 0, OPT_STACK},
		{"norm", no_argument, 0, OPT_NORM},
		{"pool", required_argument, 0, OPT_POOL},
		{"dtype", required_argument, 0, OPT_DTYPE},
		{"batch", required_argument, 0, OPT_BATCH},
		{"shard", required_argument, 0, OPT_SHARD},
		{"mask", required_argument, 0, OPT_MASK},
		{"adapter", required_argument, 0, OPT_ADAPTER},
		{"output", required_argument, 0, 'o'},
		{0, 0, 0, 0},
	};
	memset(o, 0, sizeof *o);
	o->batch = 16;
	o->dtype = AIM_F32;
	o->shard_n = 1;
	o->device = "cpu";
	int c;
	while ((c = getopt_long(argc, argv, "m:o:" AIM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case OPT_HEAD: o->head = optarg; break;
		case OPT_ADAPTER: o->adapter = optarg; break;
		case OPT_ARCH: o->arch = optarg; break;
		case OPT_DEVICE: o->device = aim_opt_device(optarg); break;
		case OPT_PRECISION: o->precision = aim_opt_precision(optarg); break;
		case OPT_LAYERS: o->layers = optarg; break;
		case OPT_STACK: o->stack = 1; break;
		case OPT_NORM: o->norm = 1; break;
		case OPT_POOL:
			for (o->pool = 0; o->pool < 3 && strcmp(optarg, pool_names[o->pool]); o->pool++)
				;
			if (o->pool == 3)
				aim_usage_error("--pool: '%s' is not none, mean or attn", optarg);
			break;
		case OPT_DTYPE:
			o->dtype = aim_dtype_parse_lower(optarg);
			if (o->dtype != AIM_F32 && o->dtype != AIM_F16 && o->dtype != AIM_BF16)
				aim_usage_error("--dtype: '%s' is not f32, f16 or bf16", optarg);
			break;
		case OPT_BATCH: o->batch = (int)aim_opt_int("--batch", optarg, 1, 1 << 16); break;
		case OPT_SHARD: aim_opt_shard("--shard", optarg, &o->shard_i, &o->shard_n); break;
		case OPT_MASK:
			if ((o->causal = aim_probe_mask_parse(optarg)) < 0)
				aim_usage_error("unknown --mask '%s' (none, causal)", optarg);
			break;
		case 'o': o->output = optarg; break;
		default: aim_common_option(c, optarg); break;
		}
	}
	if (!o->model)
		aim_usage_error("a model is required (-m MODEL)");
	if (o->pool == POOL_ATTN && o->stack)
		aim_usage_error("--pool attn pools the averaged blocks; it cannot be used with --stack");
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
}

/* --layers: a comma list of blocks and ranges, or last / best / all. */
static int parse_layers(const char *spec, const aim_config *c, int *out)
{
	int n = aim_config_parse_layers(c, spec, out);
	if (n < 0 && spec && !strcmp(spec, "best")) /* a fine value this model has no answer for */
		aim_die("--layers best: %s", aim_errmsg());
	if (n < 0)
		aim_usage_error("--%s", aim_errmsg());
	return n;
}

/* CPU time of the whole process (all threads), for -v timings. */
static double cpu_seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static char *layers_json(const int *layers, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_integer(layers[i]));
	char *s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

/* Pass through every tensor indexed by sample (but the patches), keeping
 * the selected rows, and the metadata (but the pixel normalisation). */
static void pass_through(aim_record *out, const aim_record *in, int64_t B, const int *rowsel,
			 int nsel)
{
	for (int i = 0; i < in->n; i++) {
		const aim_tensor *t = &in->t[i];
		if (!strcmp(t->name, "patches") || t->ndim < 1 || t->shape[0] != B)
			continue;
		int64_t shape[AIM_MAX_DIMS];
		memcpy(shape, t->shape, sizeof shape);
		shape[0] = nsel;
		aim_tensor *nt = aim_record_add(out, t->name, t->dtype, t->ndim, shape, NULL);
		if (!nt)
			aim_die_status(AIM_ERR);
		size_t row = t->nbytes / (size_t)B;
		for (int s = 0; s < nsel; s++)
			memcpy((char *)nt->data + (size_t)s * row, (const char *)t->data + (size_t)rowsel[s] * row,
			       row);
	}
	for (int i = 0; i < in->nmeta; i++) {
		const char *k = in->meta[i].key;
		if (!strcmp(k, "aim.mean") || !strcmp(k, "aim.std"))
			continue;
		const char *v = in->meta[i].value;
		if (!strcmp(k, "aim.names") && nsel != B) {
			json_t *a = json_loads(v, 0, NULL), *b = json_array();
			for (int s = 0; s < nsel && json_is_array(a); s++)
				json_array_append(b, json_array_get(a, rowsel[s]));
			char *sv = json_dumps(b, JSON_COMPACT);
			aim_record_set_meta(out, k, sv ? sv : "[]");
			free(sv);
			json_decref(a);
			json_decref(b);
			continue;
		}
		aim_record_set_meta(out, k, v);
	}
}

int main(int argc, char **argv)
{
	aim_prog_init("aim-extract", usage);
	options o;
	parse_options(&o, argc, argv);
	aim_apply_threads();

	aim_load_opts lo = {.arch = o.arch, .head = o.head, .device = o.device};
	aim_model *m;
	if (aim_model_load(&m, o.model, &lo) < 0)
		aim_die_status(AIM_ERR);
	if (o.adapter) {
		char warn[1024];
		if (aim_tune_apply(m, o.adapter, NULL, warn, sizeof warn) < 0)
			aim_die_status(AIM_ERR);
		if (warn[0])
			aim_warn("%s", warn);
	}
	const aim_config *c = &m->cfg;
	char *config_json = aim_config_to_json(c);
	if (aim_backend_set_precision(m->be, o.precision))
		aim_die("--precision %s: %s", o.precision, aim_errmsg());
	if (aim_self.verbose)
		aim_info("backend: %s", aim_backend_line(m->be));
	int layers[AIM_MAX_BLOCKS];
	int nl = parse_layers(o.layers, c, layers);
	unsigned char keep[AIM_MAX_BLOCKS] = {0};
	for (int i = 0; i < nl; i++)
		keep[layers[i]] = 1;
	aim_head head;
	int have_head = 0;
	if (o.pool == POOL_ATTN) {
		if (!m->has_head)
			aim_die("%s: --pool attn needs the probe head: give --head FILE (e.g. the "
				"released *_head_best_layers.pth) or a model file with head.* tensors",
				o.model);
		if (aim_head_load(&head, &m->head, c->heads, o.head ? o.head : o.model) < 0)
			aim_die_status(AIM_ERR);
		if (head.cfg.kind != AIM_PROBE_ATTENTIVE)
			aim_die("%s: --pool attn needs an attentive head; this one is linear",
				o.head ? o.head : o.model);
		if (head.cfg.dim != c->dim)
			aim_die("%s: head of width %d for a model of width %d", o.head ? o.head : o.model,
				head.cfg.dim, c->dim);
		have_head = 1;
	}
	char *layers_s = layers_json(layers, nl);
	/* --mask causal: the model's pretraining order (aim.train; raster for
	 * published weights), for its own grid */
	int *order = NULL;
	if (o.causal && aim_ckpt_model_order(o.model, c, &order))
		aim_die_status(AIM_ERR);

	aim_reader *rd = aim_reader_open((const char *const *)o.inputs, o.ninputs);
	if (!rd)
		aim_die_status(AIM_ERR);
	aim_batcher *bt = aim_batcher_new(rd, o.batch);
	aim_writer *w = aim_writer_open(o.output, 1, 0);
	if (!bt || !w)
		aim_die_status(AIM_ERR);
	aim_record in, out;
	aim_record_init(&in);
	aim_record_init(&out);
	float *x = NULL, *feat = NULL, *tmp = NULL, *dx = NULL, *dtmp = NULL, *ptok = NULL;
	size_t xcap = 0, fcap = 0, tcap = 0, dxcap = 0, dtcap = 0, pcap = 0;
	const aim_backend *be = m->be;
	int *rowsel = NULL;
	int64_t position = 0, done = 0;
	double fwd_seconds = 0, fwd_flops = 0, fwd_cpu = 0;
	aim_progress prog;
	aim_progress_start(&prog, 10);
	int rc;
	while ((rc = aim_batcher_next(bt, &in)) == 1) {
		const char *where = aim_reader_where(rd);
		aim_geometry geom;
		if (aim_patches_geometry(&geom, &in, c, where))
			aim_die("%s", aim_errmsg());
		aim_tensor *pt = aim_record_find(&in, "patches");
		int64_t B = pt->shape[0], K = geom.K;
		int rows = geom.rows, cols = geom.cols;
		rowsel = realloc(rowsel, sizeof(int) * (size_t)B);
		int nsel = 0;
		for (int64_t i = 0; i < B; i++, position++)
			if (position % o.shard_n == o.shard_i)
				rowsel[nsel++] = (int)i;
		if (nsel == 0)
			continue;
		size_t D = c->dim, need = (size_t)nsel * K * pt->shape[2];
		if (need > xcap && !(x = realloc(x, (xcap = need) * sizeof(float))))
			aim_die("out of memory");
		#pragma omp parallel for schedule(static)
		for (int i = 0; i < nsel; i++)
			aim_patches_to_f32(x + (size_t)i * K * geom.P, pt, rowsel[i], &geom);
		if (order && (rows != c->grid_rows || cols != c->grid_cols))
			aim_die("%s: --mask causal: a %dx%d grid, but the model was pretrained on "
				"%dx%d", where, rows, cols, c->grid_rows, c->grid_cols);
		if (order && aim_permute_patches(x, order, nsel, K, geom.P))
			aim_die_status(AIM_ERR);
		const float *xin = x;
		if (!be->host_memory) { /* a device backend: patches to its memory */
			if (need > dxcap) {
				be->free(dx);
				if (!(dx = be->alloc((dxcap = need) * sizeof(float))))
					aim_die("out of device memory");
			}
			be->upload(dx, x, need * sizeof(float));
			xin = dx;
		}

		aim_forward_opts fo = {.mask = o.causal ? AIM_MASK_CAUSAL : AIM_MASK_NONE, .keep = keep,
				       .order = order};
		double t0 = aim_now(), c0 = cpu_seconds();
		if (aim_model_forward(m, xin, nsel, rows, cols, &fo) < 0)
			aim_die("%s: %s", where, aim_errmsg());
		fwd_seconds += aim_now() - t0;
		fwd_cpu += cpu_seconds() - c0;
		fwd_flops += aim_model_flops(c, rows, cols) * nsel;

		/* Blocks → [nsel, L', K, D] with L' = nl (stack) or 1 (average). */
		size_t tok = (size_t)nsel * K, per_layer = tok * D;
		int nout = o.stack ? nl : 1;
		need = per_layer * nout;
		if (need > fcap && !(feat = realloc(feat, (fcap = need) * sizeof(float))))
			aim_die("out of memory");
		if (o.norm && per_layer > tcap && !(tmp = realloc(tmp, (tcap = per_layer) * sizeof(float))))
			aim_die("out of memory");
		if (!be->host_memory && o.norm && per_layer > dtcap) {
			be->free(dtmp);
			if (!(dtmp = be->alloc((dtcap = per_layer) * sizeof(float))))
				aim_die("out of device memory");
		}
		if (!be->host_memory && per_layer > tcap &&
		    !(tmp = realloc(tmp, (tcap = per_layer) * sizeof(float))))
			aim_die("out of memory");
		if (!o.stack)
			memset(feat, 0, per_layer * sizeof(float));
		for (int li = 0; li < nl; li++) {
			const float *y = aim_model_block_output(m, layers[li]);
			if (aim_model_prompt_tokens(m)) { /* the patch tokens only */
				if (per_layer > pcap) {
					be->free(ptok);
					if (!(ptok = be->alloc((pcap = per_layer) * sizeof(float))))
						aim_die("out of memory");
				}
				be->zero(ptok, per_layer * sizeof(float));
				aim_model_patch_tokens_add(m, layers[li], 1.0f, ptok);
				y = ptok;
			}
			if (o.norm) { /* in the backend's memory, then here */
				float *dst = be->host_memory ? tmp : dtmp;
				aim_model_post_norm(m, dst, y, (int64_t)tok);
				y = dst;
			}
			if (!be->host_memory) {
				be->download(tmp, y, per_layer * sizeof(float));
				y = tmp;
			}
			if (o.stack) {
				/* sample-major: [s, li, k, d] */
				for (int s = 0; s < nsel; s++)
					memcpy(feat + ((size_t)s * nl + li) * K * D, y + (size_t)s * K * D,
					       sizeof(float) * K * D);
			} else {
				aim_axpy(feat, 1.0f, y, per_layer);
			}
		}
		if (!o.stack && nl > 1)
			aim_scale(feat, 1.0f / nl, feat, per_layer);

		int64_t shape[4];
		int ndim = 0;
		const float *res = feat;
		float *pooled = NULL;
		if (o.pool == POOL_NONE) {
			shape[ndim++] = nsel;
			if (o.stack)
				shape[ndim++] = nl;
			shape[ndim++] = K;
			shape[ndim++] = (int64_t)D;
		} else {
			size_t groups = (size_t)nsel * nout;
			pooled = malloc(groups * D * sizeof(float));
			if (!pooled)
				aim_die("out of memory");
			if (o.pool == POOL_MEAN) {
				#pragma omp parallel for schedule(static)
				for (size_t g = 0; g < groups; g++) {
					float *pd = pooled + g * D;
					const float *src = feat + g * K * D;
					memset(pd, 0, D * sizeof(float));
					for (int64_t k = 0; k < K; k++)
						for (size_t d = 0; d < D; d++)
							pd[d] += src[k * D + d];
					for (size_t d = 0; d < D; d++)
						pd[d] /= (float)K;
				}
			} else if (aim_head_forward(&head, feat, nsel, K, pooled, NULL) < 0) {
				aim_die("%s: %s", where, aim_errmsg());
			}
			res = pooled;
			shape[ndim++] = nsel;
			if (o.stack)
				shape[ndim++] = nl;
			shape[ndim++] = (int64_t)D;
		}
		aim_record_clear(&out);
		aim_tensor *ft = aim_record_add(&out, "features", o.dtype, ndim, shape, NULL);
		if (!ft)
			aim_die_status(AIM_ERR);
		aim_convert(ft->data, o.dtype, res, AIM_F32, (size_t)aim_tensor_numel(ft));
		free(pooled);
		pass_through(&out, &in, B, rowsel, nsel);
		aim_record_set_meta(&out, "aim.model", o.model);
		aim_record_set_meta(&out, "aim.layers", layers_s);
		if (o.causal)
			aim_record_set_meta(&out, "aim.mask", "causal");
		aim_record_set_meta(&out, "aim.pool", pool_names[o.pool]);
		/* The architecture travels with the features, so aim-probe knows
		 * the model's head count without being told. */
		if (config_json)
			aim_record_set_meta(&out, "aim.config", config_json);
		int wr = aim_writer_write(w, &out);
		if (wr == AIM_EPIPE) { /* the reader downstream has gone: end quietly */
			aim_writer_abort(w);
			w = NULL;
			break;
		}
		if (wr < 0)
			aim_die_status(wr);
		done += nsel;
		aim_progress_count(&prog, done, "images", aim_reader_fraction(rd), NULL);
	}
	if (w && rc < 0)
		aim_die_status(rc);
	aim_progress_end(&prog);
	int cr = w ? aim_writer_close(w) : AIM_EPIPE;
	if (cr < 0 && cr != AIM_EPIPE)
		aim_die_status(cr);
	if (cr == 0)
		aim_info("%lld images, %d blocks %s", (long long)done, nl, layers_s);
	if (cr == 0 && aim_self.verbose && fwd_seconds > 0)
		aim_info("forward: %.3f s, %.2f images/s, %.1f GFLOP/s, %.3f CPU s", fwd_seconds,
			 done / fwd_seconds, fwd_flops / fwd_seconds * 1e-9, fwd_cpu);
	if (have_head)
		aim_head_free(&head);
	aim_batcher_free(bt);
	aim_reader_close(rd);
	aim_record_free(&in);
	aim_record_free(&out);
	free(x); free(feat); free(tmp); free(rowsel); free(layers_s); free(order);
	if (dx)
		be->free(dx);
	if (dtmp)
		be->free(dtmp);
	if (ptok)
		be->free(ptok);
	aim_model_free(m);
	free(config_json);
	return AIM_EXIT_OK;
}
