/* aim-eval: top-1 / top-5 / loss of a classifier on a labelled stream.
 *
 *   aim-eval --head HEAD [FEATURES...]     features stream + probe head
 *   aim-eval -m MODEL [--head HEAD] [PATCHES...]  end to end from patches
 *   aim-eval [LOGITS...]                   logits stream with labels
 *   aim-eval -m CHECKPOINT --pixel-loss [PATCHES...]  pretraining loss
 *
 * Reports n, top-1, top-5, mean cross-entropy, per-class accuracy and the
 * most confused pairs, as text or JSON; optionally draws the confusion
 * matrix and writes the logits stream. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "err.h"
#include "fileio.h"
#include "metrics.h"
#include "metrics_draw.h"
#include "model_load.h"
#include "probe_data.h"
#include "probe_head.h"
#include "safetensors.h"
#include "weights_file.h"
#include "stream.h"
#include "train_ckpt.h"
#include "train_data.h"
#include "train_step.h"
#include "trunk_features.h"
#include "tune_io.h"

static const char usage[] =
	"Usage: aim-eval [options] --head HEAD [FEATURES...]\n"
	"       aim-eval [options] -m MODEL [--head HEAD] [PATCHES...]\n"
	"       aim-eval [options] [LOGITS...]\n"
	"       aim-eval [options] -m CHECKPOINT --pixel-loss [PATCHES...]\n"
	"Evaluate a classifier on a labelled stream (files or stdin): top-1 and\n"
	"top-5 accuracy, mean cross-entropy, per-class accuracy, most confused pairs.\n"
	"\n"
	"  --head FILE          probe head (head.* names, e.g. from aim-probe or a published\n"
	"                       AIM head; safetensors or PyTorch checkpoint, told apart by\n"
	"                       content; replaces a head the model file carries); without\n"
	"                       -m the input is a features stream\n"
	"  -m, --model MODEL    run the frozen trunk on a patches stream (.safetensors,\n"
	"                       Hugging Face directory or .pth backbone); the head comes\n"
	"                       from --head or from the model file itself\n"
	"  --adapter DIR        -m: adapt the trunk (aim-adapter(5)): LoRA merged into the\n"
	"                       weights at load; bottleneck adapters and prompts applied\n"
	"  --arch NAME          -m: architecture when the model file carries none\n"
	"                       (aim-600M, aim-1B, aim-3B, aim-7B, aimv2-large-patch14-224 ...)\n"
	"  --device DEV         -m: the trunk on cpu (default), cuda, cuda:N (GPU N) or\n"
	"                       auto (CUDA when usable, else the CPU)\n"
	"  --precision P        -m: the trunk's matrix products in fp32 (default), tf32\n"
	"                       (GPU only) or bf16 (fp32 accumulation; GPU, or CPU\n"
	"                       with native bf16)\n"
	"  --layers LIST        -m: blocks averaged for the head (default: the model's\n"
	"                       probe layers; also last, best, all, 12-17, 3,5)\n"
	"  --mask none|causal   -m: the trunk's attention: bidirectional (default), or\n"
	"                       causal in the order the model was pretrained in\n"
	"  --batch N            -m: images per forward pass (default 16)\n"
	"  --pixel-loss         -m: the pretraining validation loss of an aim-train\n"
	"                       checkpoint (file or run directory: its newest) on a\n"
	"                       patches stream, held in memory, as aim-train --val computes it\n"
	"  --chunks N           --pixel-loss: also the loss of each of N equal parts of the\n"
	"                       sequence, in prediction order\n"
	"  --heads N            attention heads of a head whose file does not record them\n"
	"                       (aim.head metadata); default: the model's (-m), else a\n"
	"                       config.json beside the head, the features' aim.config,\n"
	"                       else dim/128\n"
	"  --json               print {\"n\",\"top1\",\"top5\",\"loss\",\"per_class\",...} on stdout\n"
	"  --confusion FILE     draw the confusion matrix as PNG\n"
	"  --logits-out FILE    write the logits stream (logits, label, id) to FILE ('-':\n"
	"                       stdout, the report then goes to stderr)\n"
	"  --pairs N            most confused pairs to report (default 10)\n"
	"  --threads N          threads (default: all cores)\n"
	"  -q, --quiet          no progress messages\n"
	"  -v, --verbose        accepted as by every aim tool (aim-eval has no extra messages)\n"
	"  --help, --version\n";

enum { OPT_HEAD = AIM_OPT_FIRST_TOOL, OPT_HEADS, OPT_JSON, OPT_CONFUSION, OPT_LOGITS_OUT,
       OPT_PAIRS, OPT_ARCH, OPT_LAYERS, OPT_BATCH, OPT_PIXEL_LOSS, OPT_CHUNKS, OPT_DEVICE,
       OPT_PRECISION, OPT_MASK, OPT_ADAPTER };

typedef struct {
	const char *head_path, *confusion, *logits_out, *model, *arch, *layers, *device, *precision;
	const char *adapter;
	int heads, json, pairs, batch, pixel_loss, causal, chunks;
	char **inputs;
	int ninputs;
} eval_opts;

static void parse_options(eval_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		AIM_COMMON_LONGOPTS,
		{"head", required_argument, 0, OPT_HEAD},
		{"heads", required_argument, 0, OPT_HEADS},
		{"json", no_argument, 0, OPT_JSON},
		{"confusion", required_argument, 0, OPT_CONFUSION},
		{"logits-out", required_argument, 0, OPT_LOGITS_OUT},
		{"pairs", required_argument, 0, OPT_PAIRS},
		{"model", required_argument, 0, 'm'},
		{"arch", required_argument, 0, OPT_ARCH},
		{"device", required_argument, 0, OPT_DEVICE},
		{"precision", required_argument, 0, OPT_PRECISION},
		{"layers", required_argument, 0, OPT_LAYERS},
		{"mask", required_argument, 0, OPT_MASK},
		{"batch", required_argument, 0, OPT_BATCH},
		{"pixel-loss", no_argument, 0, OPT_PIXEL_LOSS},
		{"chunks", required_argument, 0, OPT_CHUNKS},
		{"adapter", required_argument, 0, OPT_ADAPTER},
		{0, 0, 0, 0},
	};
	memset(o, 0, sizeof *o);
	o->pairs = 10;
	o->batch = 16;
	int c;
	while ((c = getopt_long(argc, argv, "m:" AIM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case OPT_HEAD: o->head_path = optarg; break;
		case OPT_HEADS: o->heads = (int)aim_opt_int("--heads", optarg, 1, 65536); break;
		case OPT_JSON: o->json = 1; break;
		case OPT_CONFUSION: o->confusion = optarg; break;
		case OPT_LOGITS_OUT: o->logits_out = optarg; break;
		case OPT_PAIRS: o->pairs = (int)aim_opt_int("--pairs", optarg, 0, 1000000); break;
		case 'm': o->model = optarg; break;
		case OPT_ARCH: o->arch = optarg; break;
		case OPT_DEVICE: o->device = aim_opt_device(optarg); break;
		case OPT_PRECISION: o->precision = aim_opt_precision(optarg); break;
		case OPT_LAYERS: o->layers = optarg; break;
		case OPT_MASK:
			if ((o->causal = aim_probe_mask_parse(optarg)) < 0)
				aim_usage_error("unknown --mask '%s' (none, causal)", optarg);
			break;
		case OPT_BATCH: o->batch = (int)aim_opt_int("--batch", optarg, 1, 1 << 20); break;
		case OPT_PIXEL_LOSS: o->pixel_loss = 1; break;
		case OPT_CHUNKS: o->chunks = (int)aim_opt_int("--chunks", optarg, 1, 4096); break;
		case OPT_ADAPTER: o->adapter = optarg; break;
		default: aim_common_option(c, optarg);
		}
	}
	if (!o->model && (o->arch || o->layers || o->pixel_loss || o->device || o->precision ||
			  o->causal || o->adapter))
		aim_usage_error("--arch, --layers, --mask, --pixel-loss, --device, --precision and "
				"--adapter need -m MODEL");
	if (o->chunks && !o->pixel_loss)
		aim_usage_error("--chunks needs --pixel-loss");
	if (o->pixel_loss && o->adapter)
		aim_usage_error("--pixel-loss takes no --adapter");
	if (o->pixel_loss &&
	    (o->head_path || o->layers || o->confusion || o->logits_out || o->causal))
		aim_usage_error("--pixel-loss takes no --head, --layers, --mask, --confusion or "
				"--logits-out");
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
}

/* num_heads from a Hugging Face config.json beside the head file (0: none). */
static int heads_from_config_beside(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	char cfg[4200];
	if (slash) {
		*slash = 0;
		snprintf(cfg, sizeof cfg, "%s/config.json", dir);
	} else {
		snprintf(cfg, sizeof cfg, "config.json");
	}
	char *text = NULL;
	size_t len = 0;
	if (aim_read_file(cfg, &text, &len) < 0) {
		aim_error_clear();
		return 0;
	}
	int h = aim_num_heads_json(text);
	free(text);
	return h;
}

/* Everything the evaluation carries from record to record. */
typedef struct {
	eval_opts *o;
	aim_weights_file head_file; /* --head, opened by its content */
	aim_head head;
	int have_head;
	char **head_classes;
	int nhead_classes;
	char **classes; /* the names reported (stream's, else head's) */
	int nclasses;
	aim_metrics m;
	int C;
	aim_writer *logits_w;
	float *x, *logits;
	size_t xcap, lcap;
	aim_label_buf lb;      /* labels realigned when a record holds them unaligned */
	FILE *report;          /* stdout, or stderr when the logits stream is stdout */
	aim_model *model;      /* -m */
	aim_trunk_features tf;
} eval_state;

static void load_head(eval_state *s, const aim_record *first, const char *what)
{
	eval_opts *o = s->o;
	const aim_record *hr;
	const char *hname;
	if (o->head_path) { /* safetensors or a PyTorch checkpoint: replaces the model's own */
		if (aim_wf_open(&s->head_file, o->head_path))
			aim_die_status(AIM_ERR);
		hr = aim_wf_record(&s->head_file);
		hname = o->head_path;
	} else {
		/* the model file's own head */
		if (!s->model->has_head)
			aim_die("%s: the model carries no probe head: give --head FILE", o->model);
		hr = &s->model->head;
		hname = o->model;
	}
	int hint = o->heads;
	if (!hint && s->model)
		hint = s->model->cfg.heads;
	if (!hint && o->head_path && !aim_record_get_meta(hr, "aim.head"))
		hint = heads_from_config_beside(o->head_path);
	if (!hint && first)
		hint = aim_features_heads(first);
	if (aim_head_load(&s->head, hr, hint, hname))
		aim_die_status(AIM_ERR);
	if (s->model && s->head.cfg.dim != s->model->cfg.dim)
		aim_die("%s: a head of dimension %d does not fit the model's %d", hname,
			s->head.cfg.dim, s->model->cfg.dim);
	s->have_head = 1;
	int n = aim_classes_parse(hr, hname, &s->head_classes);
	if (n < 0)
		aim_die_status(n);
	if (n && n != s->head.cfg.classes)
		aim_die("%s: aim.classes lists %d classes but the head has %d", hname, n,
			s->head.cfg.classes);
	s->nhead_classes = n;
	(void)what;
}

/* Check the stream's class list (if any) against the classifier. */
static void check_classes(eval_state *s, const aim_record *r, const char *what)
{
	char **names;
	int n = aim_classes_parse(r, what, &names);
	if (n < 0)
		aim_die_status(n);
	if (!n)
		return;
	if (n != s->C)
		aim_die("%s: the stream lists %d classes but the %s has %d", what, n,
			s->have_head ? "head" : "logits", s->C);
	if (s->nhead_classes && !aim_classes_equal(names, n, s->head_classes, s->nhead_classes))
		aim_die("%s: the stream's class list differs from the head's (%s)", what,
			s->o->head_path);
	if (!s->classes) {
		s->classes = names;
		s->nclasses = n;
	} else if (!aim_classes_equal(names, n, s->classes, s->nclasses)) {
		aim_die("%s: the class list changed within the stream", what);
	} else {
		aim_classes_free(names, n);
	}
}

static void *grow(void *p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return p;
	void *q = realloc(p, need);
	if (!q)
		aim_die("out of memory (%zu bytes)", need);
	*cap = need;
	return q;
}

/* Logits of one record: from the head on its features, or read as they are. */
static const float *record_logits(eval_state *s, const aim_record *r, const char *what,
				  int64_t *B, const int64_t **labels)
{
	if (s->model) {
		const float *feat;
		int64_t K;
		if (aim_trunk_features_run(&s->tf, r, what, &feat, B, &K))
			aim_die_status(AIM_ERR);
		if (aim_record_labels(r, *B, what, &s->lb, labels))
			aim_die_status(AIM_ERR);
		s->logits = grow(s->logits, &s->lcap, (size_t)(*B * s->C) * sizeof(float));
		if (aim_head_forward(&s->head, feat, *B, K, NULL, s->logits))
			aim_die("%s: %s", what, aim_errmsg());
		return s->logits;
	}
	if (s->have_head) {
		int64_t K, D;
		if (aim_features_shape(r, what, B, &K, &D, &s->lb, labels))
			aim_die_status(AIM_ERR);
		if (D != s->head.cfg.dim)
			aim_die("%s: features have dimension %lld but the head expects %d", what,
				(long long)D, s->head.cfg.dim);
		const aim_tensor *f = aim_record_find(r, "features");
		s->x = grow(s->x, &s->xcap, (size_t)(*B * K * D) * sizeof(float));
		aim_features_to_f32(s->x, f);
		s->logits = grow(s->logits, &s->lcap, (size_t)(*B * s->C) * sizeof(float));
		if (aim_head_forward(&s->head, s->x, *B, K, NULL, s->logits))
			aim_die("%s: %s", what, aim_errmsg());
		return s->logits;
	}
	const aim_tensor *t = aim_record_find(r, "logits");
	char sh[96];
	if (!t) {
		if (aim_record_find(r, "features"))
			aim_die("%s: a features stream needs --head", what);
		aim_die("%s: no 'logits' tensor", what);
	}
	if (t->ndim != 2 || (t->dtype != AIM_F32 && t->dtype != AIM_F16 && t->dtype != AIM_BF16))
		aim_die("%s: logits must be float [B, classes], not %s %s", what,
			aim_dtype_name(t->dtype), aim_shape_str(t->ndim, t->shape, sh, sizeof sh));
	*B = t->shape[0];
	if (!s->C)
		s->C = (int)t->shape[1];
	else if (t->shape[1] != s->C)
		aim_die("%s: %lld classes after %d", what, (long long)t->shape[1], s->C);
	if (aim_record_labels(r, *B, what, &s->lb, labels))
		aim_die_status(AIM_ERR);
	s->logits = grow(s->logits, &s->lcap, (size_t)(*B * s->C) * sizeof(float));
	aim_to_f32(s->logits, t);
	return s->logits;
}

static void write_logits(eval_state *s, const aim_record *r, const float *logits, int64_t B,
			 const int64_t *labels)
{
	aim_record out;
	aim_record_init(&out);
	int64_t shape[2] = {B, s->C};
	int ok = aim_record_add_ref(&out, "logits", AIM_F32, 2, shape, (void *)logits) != NULL;
	if (ok && labels)
		ok = aim_record_add_ref(&out, "label", AIM_I64, 1, &B, (void *)labels) != NULL;
	const aim_tensor *id = aim_record_find(r, "id");
	if (ok && id && id->ndim == 1 && id->shape[0] == B)
		ok = aim_record_add_ref(&out, "id", id->dtype, 1, &B, id->data) != NULL;
	static const char *const keep[] = {"aim.classes", "aim.names", "aim.model", "aim.layers",
					   "aim.epoch"};
	for (size_t i = 0; ok && i < sizeof keep / sizeof *keep; i++) {
		const char *v = aim_record_get_meta(r, keep[i]);
		if (v)
			ok = aim_record_set_meta(&out, keep[i], v) == 0;
	}
	if (!ok)
		aim_die_status(AIM_ERR);
	int rc = aim_writer_write(s->logits_w, &out);
	aim_record_free(&out);
	if (rc)
		aim_die_status(rc);
}

static const char *class_name(const eval_state *s, int c, char *buf, size_t n)
{
	if (s->classes)
		return s->classes[c];
	if (s->head_classes)
		return s->head_classes[c];
	snprintf(buf, n, "%d", c);
	return buf;
}

static double json_num(double v) { return v; }

static void report_json(const eval_state *s)
{
	const aim_metrics *m = &s->m;
	json_t *j = json_object();
	json_object_set_new(j, "n", json_integer(m->n));
	json_object_set_new(j, "top1", json_real(json_num(aim_metrics_top1(m))));
	json_object_set_new(j, "top5", json_real(json_num(aim_metrics_top5(m))));
	json_object_set_new(j, "loss", json_real(json_num(aim_metrics_loss(m))));
	json_object_set_new(j, "unlabelled", json_integer(m->unknown));
	json_t *pc = json_object();
	char buf[32];
	for (int c = 0; c < s->C; c++) {
		double a = aim_metrics_class_accuracy(m, c);
		json_object_set_new(pc, class_name(s, c, buf, sizeof buf),
				    isnan(a) ? json_null() : json_real(a));
	}
	json_object_set_new(j, "per_class", pc);
	aim_confused_pair *p = malloc(sizeof *p * (size_t)(s->o->pairs ? s->o->pairs : 1));
	if (!p)
		aim_die("out of memory");
	int np = aim_metrics_confused_pairs(m, p, s->o->pairs);
	json_t *arr = json_array();
	for (int i = 0; i < np; i++) {
		char b1[32], b2[32];
		json_array_append_new(arr, json_pack("{s:s,s:s,s:I}", "true",
						     class_name(s, p[i].truth, b1, sizeof b1),
						     "predicted",
						     class_name(s, p[i].predicted, b2, sizeof b2),
						     "count", (json_int_t)p[i].count));
	}
	free(p);
	json_object_set_new(j, "confused", arr);
	char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
	json_decref(j);
	if (!text)
		aim_die("out of memory");
	fprintf(s->report, "%s\n", text);
	free(text);
}

static void report_text(const eval_state *s)
{
	const aim_metrics *m = &s->m;
	char buf[32], b2[32];
	fprintf(s->report, "n %lld  top-1 %.3f  top-5 %.3f  loss %.4f\n", (long long)m->n,
		aim_metrics_top1(m), aim_metrics_top5(m), aim_metrics_loss(m));
	if (m->unknown)
		fprintf(s->report, "unlabelled samples skipped: %lld\n", (long long)m->unknown);
	/* the line the published main_attnprobe.py ends with (global averages) */
	fprintf(s->report, "Averaged stats: test_loss: %.4f  acc1: %.4f  acc5: %.4f\n",
		aim_metrics_loss(m), aim_metrics_top1(m), aim_metrics_top5(m));
	fprintf(s->report, "per-class top-1 (class, n, percent):\n");
	for (int c = 0; c < s->C; c++)
		fprintf(s->report, "  %-24s %8lld %8.2f\n", class_name(s, c, buf, sizeof buf),
			(long long)aim_metrics_class_count(m, c), aim_metrics_class_accuracy(m, c));
	aim_confused_pair *p = malloc(sizeof *p * (size_t)(s->o->pairs ? s->o->pairs : 1));
	if (!p)
		aim_die("out of memory");
	int np = aim_metrics_confused_pairs(m, p, s->o->pairs);
	if (np)
		fprintf(s->report, "most confused (true -> predicted: count):\n");
	for (int i = 0; i < np; i++)
		fprintf(s->report, "  %s -> %s: %lld\n", class_name(s, p[i].truth, buf, sizeof buf),
			class_name(s, p[i].predicted, b2, sizeof b2), (long long)p[i].count);
	free(p);
}

/* The pretraining loss of a checkpoint on a patches stream: every image in
 * memory, prefix lengths drawn as aim-train draws its validation ones. */
static int pixel_loss(const eval_opts *o)
{
	char path[4096];
	struct stat sb;
	if (stat(o->model, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		int rc = aim_ckpt_latest(o->model, path, sizeof path);
		if (rc < 0)
			aim_die_status(rc);
		if (rc == 0)
			aim_die("%s: no checkpoint in this directory", o->model);
	} else {
		snprintf(path, sizeof path, "%s", o->model);
	}
	aim_stfile ck;
	if (aim_st_open(&ck, path))
		aim_die_status(AIM_ERR);
	const char *js = aim_record_get_meta(&ck.rec, "aim.train");
	const char *cj = aim_record_get_meta(&ck.rec, "aim.config");
	if (!js || !cj)
		aim_die("%s: not a pretraining checkpoint (no aim.train / aim.config metadata)", path);
	aim_train_state st;
	aim_config cfg;
	aim_model *model;
	if (aim_train_state_parse(&st, js, path) || aim_config_from_json(&cfg, cj, path) ||
	    aim_model_create(&model, &cfg, NULL) || aim_model_alloc_params(model) ||
	    aim_ckpt_load_trunk(model, &ck.rec, path))
		aim_die_status(AIM_ERR);

	aim_source src;
	if (aim_source_open(&src, (const char *const *)o->inputs, o->ninputs, 0, 1))
		aim_die_status(AIM_ERR);
	int grc = aim_source_geometry(&src);
	if (grc < 0)
		aim_die_status(grc);
	if (grc == 0)
		aim_die("%s: no images", o->ninputs ? o->inputs[0] : "stdin");
	const aim_geometry g = src.geom;
	if (g.patch != cfg.patch || g.channels != cfg.channels || g.rows != cfg.grid_rows ||
	    g.cols != cfg.grid_cols)
		aim_die("%s: %d-channel %dx%d patches on a %dx%d grid; the checkpoint takes "
			"%d-channel %dx%d patches on a %dx%d grid", o->ninputs ? o->inputs[0] : "stdin",
			g.channels, g.patch, g.patch, g.rows, g.cols, cfg.channels, cfg.patch, cfg.patch,
			cfg.grid_rows, cfg.grid_cols);
	size_t per = (size_t)g.K * g.P;
	int cap = 256, n = 0, rc = 0;
	float *x = malloc(sizeof(float) * per * (size_t)cap);
	uint64_t *gi = malloc(sizeof(uint64_t) * (size_t)cap);
	while (x && gi && (rc = aim_source_next(&src, x + per * (size_t)n, gi, cap - n)) > 0) {
		n += rc;
		if (n == cap) {
			cap *= 2;
			x = realloc(x, sizeof(float) * per * (size_t)cap);
			gi = realloc(gi, sizeof(uint64_t) * (size_t)cap);
		}
	}
	if (!x || !gi)
		aim_die("out of memory holding the images");
	if (rc < 0)
		aim_die_status(rc);
	aim_info("holding %d images (%.1f MB) in memory", n, (double)n * (double)per * 4 / 1e6);
	aim_trainer tr;
	double loss;
	/* the variant the checkpoint was trained as (order, attention, objective, head) */
	if (aim_trainer_init_variant(&tr, model, &st.v, st.head_blocks, st.head_dim, &g,
				     st.norm_pix, st.seed, o->batch) ||
	    aim_pixel_head_from_record(&tr.head, &ck.rec, path) ||
	    (tr.mtok && aim_ckpt_load_mask_token(tr.mtok, cfg.dim, &ck.rec, path)))
		aim_die_status(AIM_ERR);
	/* the state is on the host; the evaluation uploads it */
	const aim_backend *be = aim_backend_select(o->device ? o->device : "cpu");
	if (!be || aim_backend_set_precision(be, o->precision) || aim_trainer_set_backend(&tr, be))
		aim_die_status(AIM_ERR);
	if (aim_self.verbose)
		aim_info("backend: %s", aim_backend_line(be));
	double chunk[4096];
	if (aim_trainer_eval_chunks(&tr, x, n, o->chunks, &loss, chunk))
		aim_die_status(AIM_ERR);
	if (o->json) {
		printf("{\"n\":%d,\"pixel_loss\":%.10g,\"step\":%ld", n, loss, st.step);
		for (int c = 0; c < o->chunks; c++) { /* NaN (an empty chunk) as null */
			fputs(c ? "," : ",\"chunks\":[", stdout);
			if (isnan(chunk[c]))
				fputs("null", stdout);
			else
				printf("%.10g", chunk[c]);
		}
		printf("%s}\n", o->chunks ? "]" : "");
	} else {
		printf("n %d  pixel loss %.6f  (checkpoint step %ld, %s targets)\n", n, loss, st.step,
		       st.norm_pix ? "per-patch normalised" : "raw");
		for (int c = 0; c < o->chunks; c++)
			printf("chunk %d/%d  %.6f\n", c + 1, o->chunks, chunk[c]);
	}
	if (fflush(stdout))
		aim_die("stdout: %s", strerror(errno));
	aim_trainer_free(&tr);
	aim_source_close(&src);
	aim_model_free(model);
	aim_st_close(&ck);
	free(x), free(gi);
	return 0;
}

int main(int argc, char **argv)
{
	aim_prog_init("aim-eval", usage);
	eval_opts o;
	parse_options(&o, argc, argv);
	aim_apply_threads();
	if (o.pixel_loss)
		return pixel_loss(&o);

	eval_state s;
	memset(&s, 0, sizeof s);
	s.o = &o;
	/* the report must not mix into a logits stream on stdout */
	s.report = o.logits_out && !strcmp(o.logits_out, "-") ? stderr : stdout;
	aim_reader *rd = aim_reader_open((const char *const *)o.inputs, o.ninputs);
	if (!rd)
		aim_die_status(AIM_ERR);
	aim_batcher *bt = NULL;
	if (o.model) {
		aim_load_opts lo = {.arch = o.arch, .device = o.device};
		if (aim_model_load(&s.model, o.model, &lo) < 0)
			aim_die_status(AIM_ERR);
		if (aim_backend_set_precision(s.model->be, o.precision))
			aim_die("--precision %s: %s", o.precision, aim_errmsg());
		if (aim_self.verbose)
			aim_info("backend: %s", aim_backend_line(s.model->be));
		if (o.adapter) {
			char warn[1024];
			if (aim_tune_apply(s.model, o.adapter, NULL, warn, sizeof warn) < 0)
				aim_die_status(AIM_ERR);
			if (warn[0])
				aim_warn("%s", warn);
		}
		if (aim_trunk_features_init(&s.tf, s.model, o.layers))
			aim_die("--layers: %s", aim_errmsg());
		if (o.causal && aim_trunk_features_causal(&s.tf, o.model))
			aim_die_status(AIM_ERR);
		load_head(&s, NULL, o.model);
		s.C = s.head.cfg.classes;
		if (!(bt = aim_batcher_new(rd, o.batch)))
			aim_die_status(AIM_ERR);
	}
	if (o.logits_out && !(s.logits_w = aim_writer_open(o.logits_out, 3, 0)))
		aim_die_status(AIM_ERR);

	aim_record r;
	aim_record_init(&r);
	aim_progress prog;
	aim_progress_start(&prog, 10);
	int64_t seen = 0, unlabelled_records = 0;
	int rc;
	while ((rc = bt ? aim_batcher_next(bt, &r) : aim_reader_next(rd, &r)) == 1) {
		const char *what = aim_reader_where(rd);
		if (o.head_path && !s.have_head) {
			load_head(&s, &r, what);
			s.C = s.head.cfg.classes;
		}
		int64_t B;
		const int64_t *labels;
		const float *logits = record_logits(&s, &r, what, &B, &labels);
		if (!s.m.confusion && aim_metrics_init(&s.m, s.C))
			aim_die_status(AIM_ERR);
		check_classes(&s, &r, what);
		if (!labels) {
			if (!s.logits_w)
				aim_die("%s: no 'label' tensor: cannot score an unlabelled stream "
					"(--logits-out writes its logits)", what);
			unlabelled_records++;
		} else if (aim_metrics_add(&s.m, logits, labels, B)) {
			aim_die("%s: %s", what, aim_errmsg());
		}
		if (s.logits_w)
			write_logits(&s, &r, logits, B, labels);
		seen += B;
		aim_progress_count(&prog, seen, "samples", aim_reader_fraction(rd), "top-1 %.2f",
				   aim_metrics_top1(&s.m));
	}
	aim_progress_end(&prog);
	if (rc < 0)
		aim_die_status(rc);
	if (!seen)
		aim_die("%s: the stream holds no samples", o.ninputs ? o.inputs[0] : "stdin");
	if (s.logits_w && (rc = aim_writer_close(s.logits_w)))
		aim_die_status(rc);
	if (!s.m.n && !s.logits_w)
		aim_die("%s: no labelled samples (every label is -1)",
			o.ninputs ? o.inputs[0] : "stdin");
	if (s.m.n) {
		if (o.json)
			report_json(&s);
		else
			report_text(&s);
		if (o.confusion) {
			char title[96];
			snprintf(title, sizeof title, "top-1 %.2f%%  n %lld", aim_metrics_top1(&s.m),
				 (long long)s.m.n);
			if (aim_confusion_png(&s.m, s.classes ? s.classes : s.head_classes,
					      o.confusion, title))
				aim_die("%s: %s", o.confusion, aim_errmsg());
		}
	} else {
		aim_warn("no labelled samples: wrote logits only");
	}
	if (fflush(stdout) || ferror(stdout))
		aim_die("stdout: %s", strerror(errno));
	aim_record_free(&r);
	if (bt)
		aim_batcher_free(bt);
	aim_reader_close(rd);
	aim_metrics_free(&s.m);
	if (s.have_head) {
		aim_head_free(&s.head);
		aim_wf_close(&s.head_file);
	}
	if (s.model) {
		aim_trunk_features_free(&s.tf);
		aim_model_free(s.model);
	}
	aim_classes_free(s.classes, s.nclasses);
	aim_classes_free(s.head_classes, s.nhead_classes);
	free(s.x);
	free(s.logits);
	aim_label_buf_free(&s.lb);
	return 0;
}
