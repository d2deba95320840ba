/* aim-probe: train a classifier (attentive or linear probe) on frozen
 * features with labels.
 *
 *   aim-probe [options] -o HEAD.safetensors [FEATURES...]
 *   aim-probe [options] -m MODEL -o HEAD.safetensors [PATCHES...]
 *
 * Several learning rates train side by side in one pass over the data,
 * each its own head; the best on --val is kept. Epochs re-read the
 * features files; a stream on stdin is held in memory once. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "err.h"
#include "metrics.h"
#include "model_load.h"
#include "probe_data.h"
#include "probe_head.h"
#include "safetensors.h"
#include "stream.h"
#include "trunk_features.h"

static const char usage[] =
	"Usage: aim-probe [options] -o HEAD.safetensors [FEATURES...]\n"
	"       aim-probe [options] -m MODEL -o HEAD.safetensors [PATCHES...]\n"
	"Train a probe head on a labelled features stream (files or stdin), or on\n"
	"a patches stream through a frozen trunk run on the fly (-m).\n"
	"\n"
	"Model (-m):\n"
	"  -m, --model MODEL    frozen trunk (.safetensors, Hugging Face directory, .pth\n"
	"                       with --arch); input is a patches stream, --val too\n"
	"  --arch NAME          architecture when the model file carries none\n"
	"  --device DEV         -m: the trunk on cpu (default), cuda, cuda:N (GPU N) or\n"
	"                       auto (CUDA when usable, else the CPU)\n"
	"  --precision P        -m: the trunk's matrix products in fp32 (default), tf32\n"
	"                       or bf16 (fp32 accumulation; GPU only)\n"
	"  --layers LIST        blocks averaged into the features (default: the model's\n"
	"                       probe layers; also last, best, all, 12-17, 3,5)\n"
	"Head:\n"
	"  --probe attentive|linear  attentive (default): the AIM attention-pooling head;\n"
	"                       linear: mean over patches, BatchNorm, linear\n"
	"  --queries N          learned queries of the attentive head (default 1)\n"
	"  --heads N            attention heads (default: the model's, from the features'\n"
	"                       aim.config metadata; else dim/128 when that divides)\n"
	"  --linear-bias        give the final linear layer a bias (published heads have none)\n"
	"  --classes N          number of classes when the stream has no aim.classes\n"
	"                       (default: the largest label + 1)\n"
	"Training:\n"
	"  --epochs N           passes over the data (default 30)\n"
	"  --batch N            samples per step (default 256)\n"
	"  --lr LIST            peak learning rate(s), comma-separated; each trains its own\n"
	"                       head in the same pass (default 3e-3)\n"
	"  --weight-decay F     AdamW decoupled weight decay on the weight matrices (default 0.05)\n"
	"  --label-smoothing F  label smoothing of the cross-entropy (default 0.1)\n"
	"  --warmup F           epochs of linear warmup before the cosine decay\n"
	"                       (default: a tenth of --epochs)\n"
	"  --val FILE           labelled stream (features; patches with -m) to choose the\n"
	"                       best learning rate\n"
	"                       (default: the lowest training loss of the last epoch)\n"
	"  --shuffle-buffer MB  memory for shuffling samples read from files (default 512)\n"
	"  --seed N             initial weights and shuffling (default 0)\n"
	"  --init HEAD          start from this head's weights and running statistics\n"
	"                       (same probe, dimension, classes, heads and queries)\n"
	"Output:\n"
	"  -o, --output FILE    the head (safetensors, written atomically); required\n"
	"Common:\n"
	"  --threads N          threads (default: all cores)\n"
	"  -q, --quiet          no progress messages\n"
	"  -v, --verbose        accepted as by every aim tool (aim-probe has no extra messages)\n"
	"  --help, --version\n";

enum {
	OPT_PROBE = AIM_OPT_FIRST_TOOL, OPT_QUERIES, OPT_HEADS, OPT_LINEAR_BIAS, OPT_CLASSES,
	OPT_EPOCHS, OPT_BATCH, OPT_LR, OPT_WD, OPT_SMOOTH, OPT_WARMUP, OPT_VAL, OPT_SHUFFLE,
	OPT_SEED, OPT_ARCH, OPT_LAYERS, OPT_INIT, OPT_DEVICE, OPT_PRECISION,
};

#define MAX_LRS 16

typedef struct {
	aim_probe_kind kind;
	int queries, heads, linear_bias, classes, epochs, batch, nlr;
	double lr[MAX_LRS], weight_decay, smoothing, warmup;
	const char *val, *output, *model, *arch, *layers, *init, *device, *precision;
	double shuffle_mb;
	uint64_t seed;
	char **inputs;
	int ninputs;
} probe_opts;

static void parse_options(probe_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		AIM_COMMON_LONGOPTS,
		{"probe", required_argument, 0, OPT_PROBE},
		{"queries", required_argument, 0, OPT_QUERIES},
		{"heads", required_argument, 0, OPT_HEADS},
		{"linear-bias", no_argument, 0, OPT_LINEAR_BIAS},
		{"classes", required_argument, 0, OPT_CLASSES},
		{"epochs", required_argument, 0, OPT_EPOCHS},
		{"batch", required_argument, 0, OPT_BATCH},
		{"lr", required_argument, 0, OPT_LR},
		{"weight-decay", required_argument, 0, OPT_WD},
		{"label-smoothing", required_argument, 0, OPT_SMOOTH},
		{"warmup", required_argument, 0, OPT_WARMUP},
		{"val", required_argument, 0, OPT_VAL},
		{"shuffle-buffer", required_argument, 0, OPT_SHUFFLE},
		{"seed", required_argument, 0, OPT_SEED},
		{"output", required_argument, 0, 'o'},
		{"model", required_argument, 0, 'm'},
		{"arch", required_argument, 0, OPT_ARCH},
		{"device", required_argument, 0, OPT_DEVICE},
		{"precision", required_argument, 0, OPT_PRECISION},
		{"layers", required_argument, 0, OPT_LAYERS},
		{"init", required_argument, 0, OPT_INIT},
		{0, 0, 0, 0},
	};
	memset(o, 0, sizeof *o);
	o->kind = AIM_PROBE_ATTENTIVE;
	o->queries = 1;
	o->epochs = 30;
	o->batch = 256;
	o->nlr = 1;
	o->lr[0] = 3e-3;
	o->weight_decay = 0.05;
	o->smoothing = 0.1;
	o->warmup = -1;
	o->shuffle_mb = 512;
	int c;
	while ((c = getopt_long(argc, argv, "o:m:" AIM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PROBE:
			if (!strcmp(optarg, "attentive"))
				o->kind = AIM_PROBE_ATTENTIVE;
			else if (!strcmp(optarg, "linear"))
				o->kind = AIM_PROBE_LINEAR;
			else
				aim_usage_error("--probe: '%s' is not attentive or linear", optarg);
			break;
		case OPT_QUERIES: o->queries = (int)aim_opt_int("--queries", optarg, 1, 4096); break;
		case OPT_HEADS: o->heads = (int)aim_opt_int("--heads", optarg, 1, 65536); break;
		case OPT_LINEAR_BIAS: o->linear_bias = 1; break;
		case OPT_CLASSES: o->classes = (int)aim_opt_int("--classes", optarg, 1, 10000000); break;
		case OPT_EPOCHS: o->epochs = (int)aim_opt_int("--epochs", optarg, 1, 1000000); break;
		case OPT_BATCH: o->batch = (int)aim_opt_int("--batch", optarg, 1, 1 << 20); break;
		case OPT_LR:
			o->nlr = aim_opt_floats("--lr", optarg, o->lr, MAX_LRS);
			for (int i = 0; i < o->nlr; i++)
				if (!(o->lr[i] > 0))
					aim_usage_error("--lr: learning rates must be positive");
			break;
		case OPT_WD: o->weight_decay = aim_opt_float("--weight-decay", optarg, 0, 1e6); break;
		case OPT_SMOOTH: o->smoothing = aim_opt_float("--label-smoothing", optarg, 0, 1); break;
		case OPT_WARMUP: o->warmup = aim_opt_float("--warmup", optarg, 0, 1e6); break;
		case OPT_VAL: o->val = optarg; break;
		case OPT_SHUFFLE: o->shuffle_mb = aim_opt_float("--shuffle-buffer", optarg, 0, 1e9); break;
		case OPT_SEED: o->seed = (uint64_t)aim_opt_int("--seed", optarg, 0, INT64_MAX); break;
		case 'o': o->output = optarg; break;
		case 'm': o->model = optarg; break;
		case OPT_ARCH: o->arch = optarg; break;
		case OPT_DEVICE: o->device = aim_opt_device(optarg); break;
		case OPT_PRECISION: o->precision = aim_opt_precision(optarg); break;
		case OPT_LAYERS: o->layers = optarg; break;
		case OPT_INIT: o->init = optarg; break;
		default: aim_common_option(c, optarg);
		}
	}
	if (!o->output)
		aim_usage_error("an output file is required (-o HEAD.safetensors)");
	if (!o->model && (o->arch || o->layers || o->device || o->precision))
		aim_usage_error("--arch, --layers, --device and --precision need -m MODEL");
	if (o->warmup < 0)
		o->warmup = o->epochs / 10.0;
	if (o->warmup > o->epochs)
		aim_usage_error("--warmup: %g epochs is longer than --epochs %d", o->warmup, o->epochs);
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
}

/* ---- the training samples ------------------------------------------------
 * Samples are kept in the stream's dtype (F16 features stay half the size)
 * and converted to float per batch. Files are re-read every epoch through a
 * shuffle buffer; a stream on stdin is held in memory once and permuted. */
typedef struct {
	aim_reader *rd;
	int in_memory;
	int64_t K, D;
	aim_dtype dtype;
	size_t sample_bytes;
	int64_t total;          /* labelled samples per epoch */
	int64_t max_label;
	int64_t unlabelled;
	/* memory mode: all samples */
	unsigned char *all;
	int64_t *all_labels;
	int64_t nall, capall;
	int64_t *perm, next;
	/* file mode: shuffle buffer fed by the reader */
	unsigned char *buf;
	int64_t *buf_labels;
	int64_t fill, cap;
	aim_record rec;
	int64_t rec_pos, rec_B;
	const int64_t *rec_labels;
	int input_done;
	uint64_t rng;
	/* what the first record says */
	aim_record meta;
	int have_meta;
	aim_label_buf lb;
	unsigned char *raw; /* one batch of samples in their own dtype */
	size_t rawcap;
} sample_source;

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}
static int64_t rng_below(uint64_t *s, int64_t n) { return (int64_t)(rng_next(s) % (uint64_t)n); }

/* Check a record against the first one and return its labels. */
static const int64_t *record_samples(sample_source *s, const aim_record *r, const char *what,
				     int64_t *B)
{
	int64_t K, D;
	const int64_t *labels;
	if (aim_features_shape(r, what, B, &K, &D, &s->lb, &labels))
		aim_die_status(AIM_ERR);
	const aim_tensor *f = aim_record_find(r, "features");
	if (!labels)
		aim_die("%s: no 'label' tensor: aim-probe needs labelled features", what);
	if (!s->sample_bytes) {
		s->K = K, s->D = D, s->dtype = f->dtype;
		s->sample_bytes = (size_t)(K * D) * aim_dtype_size(f->dtype);
	} else if (K != s->K || D != s->D || f->dtype != s->dtype) {
		aim_die("%s: features [%lld, %lld] %s after [%lld, %lld] %s", what, (long long)K,
			(long long)D, aim_dtype_name(f->dtype), (long long)s->K, (long long)s->D,
			aim_dtype_name(s->dtype));
	}
	if (!s->have_meta) {
		for (int i = 0; i < r->nmeta; i++)
			aim_record_set_meta(&s->meta, r->meta[i].key, r->meta[i].value);
		s->have_meta = 1;
	} else if (aim_record_get_meta(r, "aim.classes")) {
		aim_record_set_meta(&s->meta, "aim.classes", aim_record_get_meta(r, "aim.classes"));
	}
	for (int64_t b = 0; b < *B; b++) {
		if (labels[b] < -1)
			aim_die("%s: label %lld", what, (long long)labels[b]);
		if (labels[b] > s->max_label)
			s->max_label = labels[b];
	}
	return labels;
}

/* First pass: learn the shape, classes and size; hold stdin in memory. */
static void source_open(sample_source *s, const probe_opts *o)
{
	memset(s, 0, sizeof *s);
	s->max_label = -1;
	s->rng = o->seed * 0x2545F4914F6CDD1Dull + 1;
	aim_record_init(&s->rec);
	aim_record_init(&s->meta);
	s->rd = aim_reader_open((const char *const *)o->inputs, o->ninputs);
	if (!s->rd)
		aim_die_status(AIM_ERR);
	s->in_memory = !aim_reader_rewindable(s->rd);
	if (s->in_memory)
		aim_info("reading the stream from standard input into memory (it is read once "
			 "and held for every epoch)");
	int rc;
	while ((rc = aim_reader_next(s->rd, &s->rec)) == 1) {
		const char *what = aim_reader_where(s->rd);
		const char *ep = aim_record_get_meta(&s->rec, "aim.epoch");
		if (ep && atoi(ep) > 0) {
			/* a looping producer: one pass is the data; the rest would
			 * only grow memory */
			aim_warn("%s: the stream loops (aim.epoch %s): its first pass is the data "
				 "and the rest is not read (-m trains on every pass)", what, ep);
			break;
		}
		int64_t B;
		const int64_t *labels = record_samples(s, &s->rec, what, &B);
		const aim_tensor *f = aim_record_find(&s->rec, "features");
		for (int64_t b = 0; b < B; b++) {
			if (labels[b] < 0) {
				s->unlabelled++;
				continue;
			}
			s->total++;
			if (!s->in_memory)
				continue;
			if (s->nall == s->capall) {
				s->capall = s->capall ? 2 * s->capall : 1024;
				s->all = realloc(s->all, (size_t)s->capall * s->sample_bytes);
				s->all_labels = realloc(s->all_labels, (size_t)s->capall * sizeof(int64_t));
				if (!s->all || !s->all_labels)
					aim_die("out of memory holding %lld samples of %zu bytes",
						(long long)s->capall, s->sample_bytes);
			}
			memcpy(s->all + (size_t)s->nall * s->sample_bytes,
			       (const unsigned char *)f->data + (size_t)b * s->sample_bytes, s->sample_bytes);
			s->all_labels[s->nall++] = labels[b];
		}
	}
	if (rc < 0)
		aim_die_status(rc);
	if (!s->total)
		aim_die("%s: no labelled samples", o->ninputs ? o->inputs[0] : "stdin");
	if (s->unlabelled)
		aim_warn("%lld samples without a label (-1) are left out of training",
			 (long long)s->unlabelled);
	if (s->in_memory) {
		aim_info("held %lld samples (%.1f MB) in memory", (long long)s->nall,
			 (double)s->nall * (double)s->sample_bytes / 1e6);
		s->perm = malloc((size_t)s->nall * sizeof(int64_t));
		if (!s->perm)
			aim_die("out of memory");
	} else {
		s->cap = (int64_t)(o->shuffle_mb * 1e6 / (double)s->sample_bytes);
		if (s->cap < 1)
			s->cap = 1;
		if (s->cap > s->total)
			s->cap = s->total;
		s->buf = malloc((size_t)s->cap * s->sample_bytes);
		s->buf_labels = malloc((size_t)s->cap * sizeof(int64_t));
		if (!s->buf || !s->buf_labels)
			aim_die("out of memory for a shuffle buffer of %lld samples (--shuffle-buffer)",
				(long long)s->cap);
	}
}

static void source_start_epoch(sample_source *s)
{
	if (s->in_memory) {
		for (int64_t i = 0; i < s->nall; i++)
			s->perm[i] = i;
		for (int64_t i = s->nall - 1; i > 0; i--) {
			int64_t j = rng_below(&s->rng, i + 1), t = s->perm[i];
			s->perm[i] = s->perm[j], s->perm[j] = t;
		}
		s->next = 0;
		return;
	}
	if (aim_reader_rewind(s->rd))
		aim_die_status(AIM_ERR);
	s->fill = 0;
	s->rec_pos = s->rec_B = 0;
	s->input_done = 0;
}

/* Next labelled sample from the reader into the shuffle buffer slot `slot`;
 * 0 at the end of the input. */
static int source_pull(sample_source *s, int64_t slot)
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
			aim_die_status(rc);
		const char *ep = rc ? aim_record_get_meta(&s->rec, "aim.epoch") : NULL;
		if (rc == 0 || (ep && atoi(ep) > 0)) { /* the end of the first pass */
			s->input_done = 1;
			return 0;
		}
		s->rec_labels = record_samples(s, &s->rec, aim_reader_where(s->rd), &s->rec_B);
		s->rec_pos = 0;
	}
}

/* Fill x [n, K, D] (float) and y [n] with up to max samples; returns n.
 * Samples are gathered in their own dtype, then converted in parallel. */
static int64_t source_batch(sample_source *s, float *x, int64_t *y, int64_t max)
{
	int64_t n = 0, per = s->K * s->D;
	size_t sb = s->sample_bytes;
	if ((size_t)max * sb > s->rawcap) {
		free(s->raw);
		s->rawcap = (size_t)max * sb;
		if (!(s->raw = malloc(s->rawcap)))
			aim_die("out of memory for a batch of %lld", (long long)max);
	}
	unsigned char *raw = s->raw;
	while (n < max) {
		const unsigned char *src;
		if (s->in_memory) {
			if (s->next == s->nall)
				break;
			int64_t i = s->perm[s->next++];
			src = s->all + (size_t)i * sb;
			y[n] = s->all_labels[i];
			memcpy(raw + (size_t)n * sb, src, sb);
		} else {
			while (s->fill < s->cap && source_pull(s, s->fill))
				s->fill++;
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

static void source_close(sample_source *s)
{
	aim_reader_close(s->rd);
	aim_record_free(&s->rec);
	aim_record_free(&s->meta);
	free(s->all), free(s->all_labels), free(s->perm), free(s->buf), free(s->buf_labels);
	aim_label_buf_free(&s->lb);
	free(s->raw);
}

/* ---- several heads trained side by side ---------------------------------- */
typedef struct {
	aim_head head;
	aim_head_adamw opt;
	aim_head_cache cache;
	double lr;
	double loss_sum;       /* this epoch */
	int64_t correct, seen; /* this epoch (training mode) */
	double val_top1, val_top5, val_loss;
} trainee;

/* Mean of the K tokens of each sample, for the linear probe. */
static void mean_tokens(float *out, const float *x, int64_t B, int64_t K, int64_t D)
{
#pragma omp parallel for schedule(static)
	for (int64_t b = 0; b < B; b++)
		for (int64_t d = 0; d < D; d++) {
			double s = 0;
			for (int64_t i = 0; i < K; i++)
				s += x[(b * K + i) * D + d];
			out[b * D + d] = (float)(s / (double)K);
		}
}

/* Evaluate every head on the validation stream (eval mode). */
static void validate(trainee *t, int n, const char *path, int64_t D, int C,
		     aim_trunk_features *tf, const aim_record *train_meta)
{
	char **train_classes;
	int ntrain = aim_classes_parse(train_meta, "the training stream", &train_classes);
	if (ntrain < 0)
		aim_die_status(ntrain);
	aim_reader *rd = aim_reader_open((const char *const *)&path, 1);
	if (!rd)
		aim_die_status(AIM_ERR);
	aim_metrics *m = calloc((size_t)n, sizeof *m);
	for (int i = 0; i < n; i++)
		if (!m || aim_metrics_init(&m[i], C))
			aim_die_status(AIM_ERR);
	aim_record r;
	aim_record_init(&r);
	aim_label_buf lb = {0};
	float *x = NULL, *logits = NULL;
	int rc;
	while ((rc = aim_reader_next(rd, &r)) == 1) {
		const char *what = aim_reader_where(rd);
		char **names;
		int nn = aim_classes_parse(&r, what, &names);
		if (nn < 0)
			aim_die_status(nn);
		if (nn && ntrain && !aim_classes_equal(names, nn, train_classes, ntrain))
			aim_die("%s: the class list differs from the training stream's", what);
		aim_classes_free(names, nn);
		int64_t B, K, Dv = D;
		const int64_t *labels;
		const float *feat;
		if (tf) {
			if (aim_trunk_features_run(tf, &r, what, &feat, &B, &K))
				aim_die_status(AIM_ERR);
			if (aim_record_labels(&r, B, what, &lb, &labels))
				aim_die_status(AIM_ERR);
		} else if (aim_features_shape(&r, what, &B, &K, &Dv, &lb, &labels)) {
			aim_die_status(AIM_ERR);
		}
		if (!labels)
			aim_die("%s: no 'label' tensor: --val needs labelled samples", what);
		if (Dv != D)
			aim_die("%s: features of dimension %lld, the training features have %lld", what,
				(long long)Dv, (long long)D);
		logits = realloc(logits, (size_t)(B * C) * sizeof(float));
		if (!tf) {
			x = realloc(x, (size_t)(B * K * D) * sizeof(float));
			if (!x)
				aim_die("out of memory");
			aim_features_to_f32(x, aim_record_find(&r, "features"));
			feat = x;
		}
		if (!logits)
			aim_die("out of memory");
		for (int i = 0; i < n; i++) {
			if (aim_head_forward(&t[i].head, feat, B, K, NULL, logits))
				aim_die_status(AIM_ERR);
			if (aim_metrics_add(&m[i], logits, labels, B))
				aim_die("%s: %s", what, aim_errmsg());
		}
	}
	if (rc < 0)
		aim_die_status(rc);
	if (!m[0].n)
		aim_die("%s: no labelled samples", path);
	for (int i = 0; i < n; i++) {
		t[i].val_top1 = aim_metrics_top1(&m[i]);
		t[i].val_top5 = aim_metrics_top5(&m[i]);
		t[i].val_loss = aim_metrics_loss(&m[i]);
		aim_info("lr %g: val top-1 %.2f  top-5 %.2f  loss %.4f (n %lld)", t[i].lr,
			 t[i].val_top1, t[i].val_top5, t[i].val_loss, (long long)m[i].n);
		aim_metrics_free(&m[i]);
	}
	free(m), free(x), free(logits);
	aim_label_buf_free(&lb);
	aim_classes_free(train_classes, ntrain);
	aim_record_free(&r);
	aim_reader_close(rd);
}

static int heads_default(const probe_opts *o, const aim_record *meta, int64_t D)
{
	if (o->heads)
		return o->heads;
	int h = aim_features_heads(meta);
	if (h)
		return h;
	if (D % 128 == 0)
		return (int)(D / 128);
	aim_die("the features do not say how many attention heads their model has "
		"(no aim.config metadata) and %lld is not a multiple of 128: give --heads",
		(long long)D);
}

/* The hyper-parameters, recorded in the head's metadata. */
static char *hparams_json(const probe_opts *o, const trainee *t, int best, int64_t samples,
			  int have_val)
{
	json_t *j = json_pack("{s:s,s:i,s:i,s:f,s:f,s:f,s:f,s:I,s:I}", "probe",
			      o->kind == AIM_PROBE_ATTENTIVE ? "attentive" : "linear", "epochs",
			      o->epochs, "batch", o->batch, "lr", t[best].lr, "weight_decay",
			      o->weight_decay, "label_smoothing", o->smoothing, "warmup_epochs",
			      o->warmup, "seed", (json_int_t)o->seed, "samples", (json_int_t)samples);
	json_t *tried = json_array();
	for (int i = 0; i < o->nlr; i++) {
		json_t *e = json_pack("{s:f,s:f}", "lr", t[i].lr, "train_loss",
				      t[i].seen ? t[i].loss_sum / (double)t[i].seen : NAN);
		if (have_val) {
			json_object_set_new(e, "val_top1", json_real(t[i].val_top1));
			json_object_set_new(e, "val_top5", json_real(t[i].val_top5));
			json_object_set_new(e, "val_loss", json_real(t[i].val_loss));
		}
		json_array_append_new(tried, e);
	}
	json_object_set_new(j, "tried", tried);
	json_object_set_new(j, "chosen_by", json_string(have_val ? "val top-1" : "train loss"));
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(8));
	json_decref(j);
	return s;
}

/* ---- the training loop shared by both inputs ---------------------------- */
typedef struct {
	const probe_opts *o;
	aim_head_config cfg;
	trainee *t;
	int C;
	int64_t K, D;
	float *xin, *xhat, *mean, *rstd, *logits, *dlogits, *grad;
	int64_t step;
} trainer;

/* --init: a head file whose shape must be the one asked for. */
static void load_init(aim_head *h, const probe_opts *o, const aim_head_config *want)
{
	aim_stfile f;
	if (aim_st_open(&f, o->init) || aim_head_load(h, &f.rec, want->heads, o->init))
		aim_die_status(AIM_ERR);
	const aim_head_config *c = &h->cfg;
	if (c->kind != want->kind || c->dim != want->dim || c->classes != want->classes ||
	    (c->kind == AIM_PROBE_ATTENTIVE && (c->heads != want->heads || c->queries != want->queries)) ||
	    c->linear_bias != want->linear_bias)
		aim_die("%s: a %s head of dimension %d, %d classes, %d heads, %d queries%s does not "
			"match the one asked for (%s, %d, %d, %d, %d%s)", o->init,
			c->kind == AIM_PROBE_ATTENTIVE ? "attentive" : "linear", c->dim, c->classes,
			c->heads, c->queries, c->linear_bias ? ", linear bias" : "",
			want->kind == AIM_PROBE_ATTENTIVE ? "attentive" : "linear", want->dim,
			want->classes, want->heads, want->queries, want->linear_bias ? ", linear bias" : "");
	aim_st_close(&f);
}

static void trainer_init(trainer *tr, const probe_opts *o, const aim_record *meta, int64_t K,
			 int64_t D, int C, int model_heads)
{
	memset(tr, 0, sizeof *tr);
	tr->o = o;
	tr->K = K, tr->D = D, tr->C = C;
	if (o->kind == AIM_PROBE_ATTENTIVE && K == 1)
		aim_warn("the features are pooled ([B, D]): attention over a single token "
			 "reduces the attentive head to a linear map");
	int heads = 0;
	if (o->kind == AIM_PROBE_ATTENTIVE)
		heads = o->heads ? o->heads : model_heads ? model_heads : heads_default(o, meta, D);
	aim_head_config_default(&tr->cfg, o->kind, (int)D, C, heads);
	if (o->kind == AIM_PROBE_ATTENTIVE)
		tr->cfg.queries = o->queries;
	tr->cfg.linear_bias = o->linear_bias;
	tr->t = calloc((size_t)o->nlr, sizeof *tr->t);
	if (!tr->t)
		aim_die("out of memory");
	aim_head start;
	if (o->init)
		load_init(&start, o, &tr->cfg);
	for (int i = 0; i < o->nlr; i++) {
		/* the same initial weights for every learning rate: a fair comparison */
		int rc = o->init ? aim_head_copy(&tr->t[i].head, &start)
				 : aim_head_init(&tr->t[i].head, &tr->cfg, o->seed);
		if (rc || aim_head_adamw_init(&tr->t[i].opt, &tr->t[i].head))
			aim_die_status(AIM_ERR);
		tr->t[i].lr = o->lr[i];
	}
	if (o->init)
		aim_head_free(&start);
	int64_t B = o->batch;
	int64_t rows = o->kind == AIM_PROBE_ATTENTIVE ? B * K : B;
	tr->xin = o->kind == AIM_PROBE_LINEAR ? malloc((size_t)(B * D) * sizeof(float)) : NULL;
	tr->xhat = malloc((size_t)(rows * D) * sizeof(float));
	tr->mean = malloc((size_t)D * sizeof(float));
	tr->rstd = malloc((size_t)D * sizeof(float));
	tr->logits = malloc((size_t)(B * C) * sizeof(float));
	tr->dlogits = malloc((size_t)(B * C) * sizeof(float));
	tr->grad = malloc(tr->t[0].head.nparams * sizeof(float));
	if ((o->kind == AIM_PROBE_LINEAR && !tr->xin) || !tr->xhat || !tr->mean || !tr->rstd ||
	    !tr->logits || !tr->dlogits || !tr->grad)
		aim_die("out of memory for a batch of %lld", (long long)B);
	if (o->kind == AIM_PROBE_ATTENTIVE)
		aim_info("attentive head: %d heads, %d queries, dimension %lld, %d classes",
			 tr->cfg.heads, tr->cfg.queries, (long long)D, C);
	else
		aim_info("linear head: dimension %lld, %d classes", (long long)D, C);
}

static void trainer_start_epoch(trainer *tr)
{
	for (int i = 0; i < tr->o->nlr; i++)
		tr->t[i].loss_sum = 0, tr->t[i].correct = tr->t[i].seen = 0;
}

static void trainer_end_epoch(trainer *tr, int epoch)
{
	for (int i = 0; i < tr->o->nlr; i++) {
		trainee *t = &tr->t[i];
		aim_info("epoch %d/%d lr %g: loss %.4f  train top-1 %.2f", epoch + 1, tr->o->epochs,
			 t->lr, t->loss_sum / (double)(t->seen ? t->seen : 1),
			 100.0 * (double)t->correct / (double)(t->seen ? t->seen : 1));
	}
}

/* One step of every head on n labelled samples x [n, K, D]; `progress` is
 * the position in the run, in epochs, for the schedule. */
static void train_batch(trainer *tr, const float *x, const int64_t *y, int64_t n, double progress)
{
	const probe_opts *o = tr->o;
	int64_t K = tr->K, D = tr->D;
	int C = tr->C;
	for (int64_t b = 0; b < n; b++)
		if (y[b] < 0 || y[b] >= C)
			aim_die("label %lld outside the %d classes", (long long)y[b], C);
	/* BatchNorm statistics depend on the data only, so every head shares the
	 * normalised batch; the first head keeps the running statistics and the
	 * others get copies at the end. */
	if (o->kind == AIM_PROBE_LINEAR) {
		mean_tokens(tr->xin, x, n, K, D);
		aim_head_bn_train_fwd(&tr->t[0].head, tr->xhat, tr->mean, tr->rstd, tr->xin, n);
	} else {
		aim_head_bn_train_fwd(&tr->t[0].head, tr->xhat, tr->mean, tr->rstd, x, n * K);
	}
	double factor = aim_head_lr_schedule(1.0, progress, o->warmup, o->epochs);
	for (int i = 0; i < o->nlr; i++) {
		trainee *t = &tr->t[i];
		if (aim_head_forward_train(&t->head, &t->cache, tr->xhat, n,
					   o->kind == AIM_PROBE_ATTENTIVE ? K : 1, tr->logits))
			aim_die_status(AIM_ERR);
		int64_t counted;
		double loss = aim_head_cross_entropy(tr->logits, y, n, C, o->smoothing, tr->dlogits,
						&counted);
		if (!isfinite(loss))
			aim_die("lr %g: the loss is %g at step %lld: lower the learning rate", t->lr,
				loss, (long long)tr->step);
		t->loss_sum += loss * (double)counted;
		t->seen += counted;
		for (int64_t b = 0; b < n; b++)
			t->correct += aim_rank_of(tr->logits + b * C, C, (int)y[b]) == 0;
		memset(tr->grad, 0, t->head.nparams * sizeof(float));
		if (aim_head_backward(&t->head, &t->cache, tr->xhat, tr->dlogits, tr->grad, NULL))
			aim_die_status(AIM_ERR);
		aim_head_adamw_step(&t->opt, &t->head, tr->grad, t->lr * factor, o->weight_decay);
	}
	tr->step++;
}

static void trainer_free(trainer *tr)
{
	for (int i = 0; i < tr->o->nlr; i++) {
		aim_head_free(&tr->t[i].head);
		aim_head_adamw_free(&tr->t[i].opt);
		aim_head_cache_free(&tr->t[i].cache);
	}
	free(tr->t), free(tr->xin), free(tr->xhat), free(tr->mean), free(tr->rstd);
	free(tr->logits), free(tr->dlogits), free(tr->grad);
}

/* Class count: --classes, the stream's aim.classes, else the largest label
 * + 1 (known only after a first pass, max_label >= 0). */
static int class_count(const probe_opts *o, const aim_record *meta, int64_t max_label,
		       const char *what)
{
	char **classes;
	int ncls = aim_classes_parse(meta, what, &classes);
	if (ncls < 0)
		aim_die_status(ncls);
	aim_classes_free(classes, ncls);
	if (ncls && o->classes && o->classes != ncls)
		aim_die("%s: the stream lists %d classes, --classes says %d", what, ncls, o->classes);
	int C = o->classes ? o->classes : ncls ? ncls : (int)max_label + 1;
	if (C < 1)
		aim_die("%s: the number of classes is unknown: the stream has no aim.classes; "
			"give --classes", what);
	if (max_label >= C)
		aim_die("%s: label %lld outside the %d classes", what, (long long)max_label, C);
	if (C < 2)
		aim_die("%s: a classifier needs at least 2 classes (found %d)", what, C);
	return C;
}

/* Features files or stdin: every epoch draws all samples once, shuffled. */
static void train_on_features(trainer *tr, const probe_opts *o, aim_record *meta)
{
	sample_source src;
	source_open(&src, o);
	const char *what = o->ninputs ? o->inputs[0] : "stdin";
	int C = class_count(o, &src.meta, src.max_label, what);
	trainer_init(tr, o, &src.meta, src.K, src.D, C, 0);
	aim_info("%lld training samples of [%lld, %lld], %d learning rate(s)",
		 (long long)src.total, (long long)src.K, (long long)src.D, o->nlr);
	int64_t B = o->batch;
	float *x = malloc((size_t)(B * src.K * src.D) * sizeof(float));
	int64_t *y = malloc((size_t)B * sizeof(int64_t));
	if (!x || !y)
		aim_die("out of memory for a batch of %lld", (long long)B);
	aim_progress prog;
	aim_progress_start(&prog, 30);
	for (int epoch = 0; epoch < o->epochs; epoch++) {
		source_start_epoch(&src);
		trainer_start_epoch(tr);
		int64_t n, done = 0;
		while ((n = source_batch(&src, x, y, B)) > 0) {
			double progress = epoch + ((double)done + 0.5 * (double)n) / (double)src.total;
			train_batch(tr, x, y, n, progress);
			done += n;
			aim_progress_update(&prog, "epoch %d/%d, %lld/%lld samples, loss %.4f",
					    epoch + 1, o->epochs, (long long)done, (long long)src.total,
					    tr->t[0].loss_sum / (double)(tr->t[0].seen ? tr->t[0].seen : 1));
		}
		aim_progress_end(&prog);
		trainer_end_epoch(tr, epoch);
	}
	aim_record_copy(meta, &src.meta);
	free(x), free(y);
	source_close(&src);
}

/* The 0-based pass a record belongs to (aim.epoch), or -1 if not recorded. */
static int record_epoch(const aim_record *r)
{
	const char *v = aim_record_get_meta(r, "aim.epoch");
	return v ? atoi(v) : -1;
}

/* Labelled samples of one pass over a rewindable patches file (counting
 * only the first pass of a looping producer's output). */
static int64_t count_labelled(aim_reader *rd)
{
	aim_record r;
	aim_record_init(&r);
	int64_t n = 0;
	int rc;
	while ((rc = aim_reader_next(rd, &r)) == 1) {
		if (record_epoch(&r) > 0)
			break;
		const aim_tensor *l = aim_record_find(&r, "label");
		if (l && l->dtype == AIM_I64)
			for (int64_t i = 0; i < aim_tensor_numel(l); i++) {
				int64_t v;
				memcpy(&v, (const char *)l->data + i * 8, 8); /* may be unaligned */
				n += v >= 0;
			}
	}
	if (rc < 0)
		aim_die_status(rc);
	aim_record_free(&r);
	if (aim_reader_rewind(rd))
		aim_die_status(AIM_ERR);
	return n;
}

/* Patches through the frozen trunk. Epochs: the aim.epoch of a looping
 * producer's records, else one pass per re-read of the files. */
static void train_on_patches(trainer *tr, const probe_opts *o, aim_trunk_features *tf,
			     aim_record *meta, int *trained)
{
	aim_reader *rd = aim_reader_open((const char *const *)o->inputs, o->ninputs);
	if (!rd)
		aim_die_status(AIM_ERR);
	int rewindable = aim_reader_rewindable(rd);
	int64_t per_epoch = rewindable ? count_labelled(rd) : 0; /* 0: not known yet */
	aim_batcher *bt = aim_batcher_new(rd, o->batch);
	if (!bt)
		aim_die_status(AIM_ERR);
	aim_record r;
	aim_record_init(&r);
	aim_label_buf lb = {0};
	float *x = NULL;
	int64_t *y = NULL;
	size_t xcap = 0;
	int epoch = 0, by_meta = -1, started = 0;
	int64_t done = 0;
	aim_progress prog;
	aim_progress_start(&prog, 30);
	for (;;) {
		int rc = aim_batcher_next(bt, &r);
		if (rc < 0)
			aim_die_status(rc);
		if (rc == 0) {
			/* the end of the input: of the run for a looping producer, of
			 * one pass for files */
			if (!started)
				break;
			aim_progress_end(&prog);
			trainer_end_epoch(tr, epoch);
			if (by_meta == 1) {
				epoch++;
				break;
			}
			if (!per_epoch)
				per_epoch = done;
			if (++epoch == o->epochs)
				break;
			if (!rewindable)
				aim_die("the patches stream ended after %d of %d epochs: stdin is read "
					"once; use a looping producer (aim-patchify --epochs %d) or files",
					epoch, o->epochs, o->epochs);
			aim_batcher_free(bt);
			if (aim_reader_rewind(rd) || !(bt = aim_batcher_new(rd, o->batch)))
				aim_die_status(AIM_ERR);
			trainer_start_epoch(tr);
			done = 0;
			continue;
		}
		const char *what = aim_reader_where(rd);
		int e = record_epoch(&r);
		if (by_meta < 0)
			by_meta = e >= 0;
		if (by_meta && e < 0)
			aim_die("%s: aim.epoch missing after records that carried it", what);
		if (by_meta && e != epoch) {
			if (e < epoch)
				aim_die("%s: aim.epoch went back from %d to %d", what, epoch, e);
			if (started) {
				aim_progress_end(&prog);
				trainer_end_epoch(tr, epoch);
			}
			if (!per_epoch)
				per_epoch = done;
			epoch = e;
			if (epoch >= o->epochs)
				break; /* the producer may loop on: we have what we need */
			trainer_start_epoch(tr);
			done = 0;
		}
		const float *feat;
		int64_t B, K;
		if (aim_trunk_features_run(tf, &r, what, &feat, &B, &K))
			aim_die_status(AIM_ERR);
		if (!started) {
			int C = class_count(o, &r, -1, what);
			trainer_init(tr, o, &r, K, tf->m->cfg.dim, C, tf->m->cfg.heads);
			aim_record_copy(meta, &r);
			for (int i = meta->n - 1; i >= 0; i--)
				aim_record_remove(meta, meta->t[i].name);
			trainer_start_epoch(tr);
			started = 1;
		}
		if (K != tr->K)
			aim_die("%s: %lld patches per image after %lld", what, (long long)K,
				(long long)tr->K);
		const int64_t *labels;
		if (aim_record_labels(&r, B, what, &lb, &labels))
			aim_die_status(AIM_ERR);
		if (!labels)
			aim_die("%s: no 'label' tensor: aim-probe needs labelled images", what);
		/* keep the labelled images only */
		size_t per = (size_t)(K * tr->D);
		if ((size_t)B * per > xcap) {
			xcap = (size_t)B * per;
			x = realloc(x, xcap * sizeof(float));
			y = realloc(y, (size_t)B * sizeof(int64_t));
			if (!x || !y)
				aim_die("out of memory");
		}
		int64_t n = 0;
		for (int64_t b = 0; b < B; b++)
			if (labels[b] >= 0) {
				memcpy(x + (size_t)n * per, feat + (size_t)b * per, per * sizeof(float));
				y[n++] = labels[b];
			}
		if (!n)
			continue;
		/* while the size of a pass is unknown (the first pass of a stream),
		 * the schedule holds the value of the middle of that pass */
		double frac = per_epoch ? ((double)done + 0.5 * (double)n) / (double)per_epoch : 0.5;
		if (frac > 1)
			frac = 1;
		train_batch(tr, x, y, n, epoch + frac);
		done += n;
		aim_progress_update(&prog, "epoch %d/%d, %lld images, loss %.4f", epoch + 1, o->epochs,
				    (long long)done,
				    tr->t[0].loss_sum / (double)(tr->t[0].seen ? tr->t[0].seen : 1));
	}
	aim_progress_end(&prog);
	if (!started)
		aim_die("%s: no images", o->ninputs ? o->inputs[0] : "stdin");
	if (epoch < o->epochs)
		aim_warn("the patches stream ended after %d of %d epochs", epoch, o->epochs);
	*trained = 1;
	free(x), free(y);
	aim_label_buf_free(&lb);
	aim_record_free(&r);
	aim_batcher_free(bt);
	aim_reader_close(rd);
}

int main(int argc, char **argv)
{
	aim_prog_init("aim-probe", usage);
	probe_opts o;
	parse_options(&o, argc, argv);
	aim_apply_threads();

	trainer tr;
	aim_record meta; /* the stream's metadata, for the head file */
	aim_record_init(&meta);
	aim_model *model = NULL;
	aim_trunk_features tf;
	memset(&tf, 0, sizeof tf);
	int64_t samples;
	if (o.model) {
		aim_load_opts lo = {.arch = o.arch, .device = o.device};
		if (aim_model_load(&model, o.model, &lo) < 0)
			aim_die_status(AIM_ERR);
		if (aim_backend_set_precision(model->be, o.precision))
			aim_die("--precision %s: %s", o.precision, aim_errmsg());
		if (aim_self.verbose)
			aim_info("backend: %s", aim_backend_line(model->be));
		if (aim_trunk_features_init(&tf, model, o.layers))
			aim_die("--layers: %s", aim_errmsg());
		int trained = 0;
		train_on_patches(&tr, &o, &tf, &meta, &trained);
		char buf[1024];
		aim_record_set_meta(&meta, "aim.model", o.model);
		aim_record_set_meta(&meta, "aim.layers",
				    aim_trunk_features_layers_json(&tf, buf, sizeof buf));
		char *cj = aim_config_to_json(&model->cfg);
		if (cj)
			aim_record_set_meta(&meta, "aim.config", cj);
		free(cj);
	} else {
		train_on_features(&tr, &o, &meta);
	}
	trainee *t = tr.t;
	samples = t[0].seen;
	int64_t D = tr.D;
	for (int i = 1; i < o.nlr; i++) {
		memcpy(t[i].head.running_mean, t[0].head.running_mean, (size_t)D * sizeof(float));
		memcpy(t[i].head.running_var, t[0].head.running_var, (size_t)D * sizeof(float));
		t[i].head.batches_tracked = t[0].head.batches_tracked;
	}

	int best = 0;
	if (o.val) {
		validate(t, o.nlr, o.val, D, tr.C, o.model ? &tf : NULL, &meta);
		for (int i = 1; i < o.nlr; i++)
			if (t[i].val_top1 > t[best].val_top1 ||
			    (t[i].val_top1 == t[best].val_top1 && t[i].val_loss < t[best].val_loss))
				best = i;
	} else {
		for (int i = 1; i < o.nlr; i++)
			if (t[i].loss_sum / (double)t[i].seen < t[best].loss_sum / (double)t[best].seen)
				best = i;
	}
	if (o.nlr > 1)
		aim_info("keeping lr %g (best %s)", t[best].lr, o.val ? "val top-1" : "training loss");

	aim_record out;
	aim_record_init(&out);
	if (aim_head_to_record(&t[best].head, &out))
		aim_die_status(AIM_ERR);
	static const char *const keep[] = {"aim.classes", "aim.model", "aim.layers", "aim.config",
					   "aim.pool"};
	for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
		const char *v = aim_record_get_meta(&meta, keep[i]);
		if (v)
			aim_record_set_meta(&out, keep[i], v);
	}
	char *hp = hparams_json(&o, t, best, samples, o.val != NULL);
	if (!hp || aim_record_set_meta(&out, "aim.probe", hp))
		aim_die("out of memory");
	free(hp);
	if (aim_st_write(o.output, &out))
		aim_die_status(AIM_ERR);
	aim_info("wrote %s (lr %g)", o.output, t[best].lr);
	aim_record_free(&out);
	trainer_free(&tr);
	aim_record_free(&meta);
	if (model) {
		aim_trunk_features_free(&tf);
		aim_model_free(model);
	}
	return 0;
}
