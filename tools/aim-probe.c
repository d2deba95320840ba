/* aim-probe: train a classifier (attentive or linear probe) on frozen
 * features with labels, or jointly with an adaptation of the trunk.
 *
 *   aim-probe [options] -o HEAD.safetensors [FEATURES...]
 *   aim-probe [options] -m MODEL -o HEAD.safetensors [PATCHES...]
 *   aim-probe [options] -m MODEL --tune lora|full|adapter|prompt -o HEAD [PATCHES...]
 *
 * Several learning rates train side by side in one pass over the data,
 * each its own head; the best on --val is kept. Epochs re-read the
 * features files; a stream on stdin is held in memory once. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "model_load.h"
#include "probe_data.h"
#include "probe_head.h"
#include "probe_samples.h"
#include "probe_trainer.h"
#include "probe_tune.h"
#include "safetensors.h"
#include "stream.h"
#include "train_ckpt.h"
#include "trunk_features.h"
#include "tune_io.h"

static const char usage[] =
	"Usage: aim-probe [options] -o HEAD.safetensors [FEATURES...]\n"
	"       aim-probe [options] -m MODEL -o HEAD.safetensors [PATCHES...]\n"
	"       aim-probe [options] -m MODEL --tune KIND -o HEAD.safetensors [PATCHES...]\n"
	"Train a probe head on a labelled features stream (files or stdin), or on\n"
	"a patches stream through a frozen trunk run on the fly (-m), or jointly\n"
	"with an adaptation of the trunk (--tune).\n"
	"\n"
	"Model (-m):\n"
	"  -m, --model MODEL    frozen trunk (.safetensors, Hugging Face directory, .pth\n"
	"                       with --arch); input is a patches stream, --val too\n"
	"  --arch NAME          architecture when the model file carries none\n"
	"  --device DEV         -m: the trunk on cpu (default), cuda, cuda:N (GPU N) or\n"
	"                       auto (CUDA when usable, else the CPU)\n"
	"  --precision P        -m: the trunk's matrix products in fp32 (default), tf32\n"
	"                       (GPU only) or bf16 (fp32 accumulation; GPU, or CPU\n"
	"                       with native bf16)\n"
	"  --layers LIST        blocks averaged into the features (default: the model's\n"
	"                       probe layers; also last, best, all, 12-17, 3,5)\n"
	"  --mask none|causal   -m: the trunk's attention: bidirectional (default), or\n"
	"                       causal in the order the model was pretrained in\n"
	"  --adapter DIR        apply an adapter to the trunk first (LoRA merged into the\n"
	"                       weights; see aim-adapter(5)); not with --tune\n"
	"Adapting the trunk (-m, trained jointly with the head):\n"
	"  --tune KIND          lora: low-rank updates of the blocks' linear layers;\n"
	"                       full: every trunk weight; adapter: a bottleneck after each\n"
	"                       block's MLP; prompt: learned tokens (trunk frozen but full)\n"
	"  --lora-rank R        LoRA rank (default 8)\n"
	"  --lora-alpha A       LoRA alpha, scaling alpha/R (default: R)\n"
	"  --lora-targets LIST  of qkv,proj,fc1,fc2, and fc3 on AIMv2 (default qkv,proj)\n"
	"  --adapter-dim N      bottleneck width of the adapters (default 64)\n"
	"  --prompts N          prompt tokens (default 8)\n"
	"  --deep               prompt tokens of their own before every block\n"
	"  --layer-decay F      full: block i learns at lr*F^(depth-i) (default 0.75)\n"
	"  --drop-path P        stochastic depth: block i's branches dropped per image\n"
	"                       with probability P*i/(depth-1) (default 0; not adapter)\n"
	"  --accum N            split each batch into N micro-batches through the trunk\n"
	"                       (memory; default 1)\n"
	"  --adapter-out DIR    write the trained adapter (lora, adapter, prompt)\n"
	"  --model-out FILE     full: write the fine-tuned model (trunk and head)\n"
	"Head:\n"
	"  --probe attentive|linear  attentive (default): the AIM attention-pooling head;\n"
	"                       linear: mean over patches, BatchNorm, linear\n"
	"  --queries N          learned queries of the attentive head (default 1)\n"
	"  --heads N            attention heads (default: the model's, from the features'\n"
	"                       aim.config metadata; else dim/128 when that divides,\n"
	"                       else the most heads >= 64 wide that divide dim)\n"
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
	"  --seed N             initial weights, shuffling, stochastic depth (default 0)\n"
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
	OPT_SEED, OPT_ARCH, OPT_LAYERS, OPT_INIT, OPT_DEVICE, OPT_PRECISION, OPT_MASK, OPT_TUNE,
	OPT_LORA_RANK, OPT_LORA_ALPHA, OPT_LORA_TARGETS, OPT_ADAPTER_DIM, OPT_PROMPTS, OPT_DEEP,
	OPT_LAYER_DECAY, OPT_DROP_PATH, OPT_ACCUM, OPT_ADAPTER_OUT, OPT_MODEL_OUT, OPT_ADAPTER,
};

typedef struct {
	aim_probe_hparams hp; /* what the heads are and how they train */
	int classes;
	const char *val, *output, *model, *arch, *layers, *device, *precision;
	int causal;
	double shuffle_mb;
	aim_tune_config tune;      /* kind AIM_TUNE_NONE: a frozen trunk */
	double layer_decay, drop_path;
	int accum;
	const char *adapter_out, *model_out, *adapter;
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
		{"mask", required_argument, 0, OPT_MASK},
		{"init", required_argument, 0, OPT_INIT},
		{"tune", required_argument, 0, OPT_TUNE},
		{"lora-rank", required_argument, 0, OPT_LORA_RANK},
		{"lora-alpha", required_argument, 0, OPT_LORA_ALPHA},
		{"lora-targets", required_argument, 0, OPT_LORA_TARGETS},
		{"adapter-dim", required_argument, 0, OPT_ADAPTER_DIM},
		{"prompts", required_argument, 0, OPT_PROMPTS},
		{"deep", no_argument, 0, OPT_DEEP},
		{"layer-decay", required_argument, 0, OPT_LAYER_DECAY},
		{"drop-path", required_argument, 0, OPT_DROP_PATH},
		{"accum", required_argument, 0, OPT_ACCUM},
		{"adapter-out", required_argument, 0, OPT_ADAPTER_OUT},
		{"model-out", required_argument, 0, OPT_MODEL_OUT},
		{"adapter", required_argument, 0, OPT_ADAPTER},
		{0, 0, 0, 0},
	};
	memset(o, 0, sizeof *o);
	o->hp.kind = AIM_PROBE_ATTENTIVE;
	o->hp.queries = 1;
	o->hp.epochs = 30;
	o->hp.batch = 256;
	o->hp.nlr = 1;
	o->hp.lr[0] = 3e-3;
	o->hp.weight_decay = 0.05;
	o->hp.smoothing = 0.1;
	o->hp.warmup = -1;
	o->shuffle_mb = 512;
	o->tune.rank = 8;
	o->tune.alpha = -1;
	o->tune.targets = 3; /* qkv, proj */
	o->tune.adapter_dim = 64;
	o->tune.prompts = 8;
	o->layer_decay = 0.75;
	o->accum = 1;
	int c, tune_opts = 0;
	while ((c = getopt_long(argc, argv, "o:m:" AIM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PROBE:
			if (!strcmp(optarg, "attentive"))
				o->hp.kind = AIM_PROBE_ATTENTIVE;
			else if (!strcmp(optarg, "linear"))
				o->hp.kind = AIM_PROBE_LINEAR;
			else
				aim_usage_error("--probe: '%s' is not attentive or linear", optarg);
			break;
		case OPT_QUERIES: o->hp.queries = (int)aim_opt_int("--queries", optarg, 1, 4096); break;
		case OPT_HEADS: o->hp.heads = (int)aim_opt_int("--heads", optarg, 1, 65536); break;
		case OPT_LINEAR_BIAS: o->hp.linear_bias = 1; break;
		case OPT_CLASSES: o->classes = (int)aim_opt_int("--classes", optarg, 1, 10000000); break;
		case OPT_EPOCHS: o->hp.epochs = (int)aim_opt_int("--epochs", optarg, 1, 1000000); break;
		case OPT_BATCH: o->hp.batch = (int)aim_opt_int("--batch", optarg, 1, 1 << 20); break;
		case OPT_LR:
			o->hp.nlr = aim_opt_floats("--lr", optarg, o->hp.lr, AIM_PROBE_MAX_LRS);
			for (int i = 0; i < o->hp.nlr; i++)
				if (!(o->hp.lr[i] > 0))
					aim_usage_error("--lr: learning rates must be positive");
			break;
		case OPT_WD: o->hp.weight_decay = aim_opt_float("--weight-decay", optarg, 0, 1e6); break;
		case OPT_SMOOTH: o->hp.smoothing = aim_opt_float("--label-smoothing", optarg, 0, 1); break;
		case OPT_WARMUP: o->hp.warmup = aim_opt_float("--warmup", optarg, 0, 1e6); break;
		case OPT_VAL: o->val = optarg; break;
		case OPT_SHUFFLE: o->shuffle_mb = aim_opt_float("--shuffle-buffer", optarg, 0, 1e9); break;
		case OPT_SEED: o->hp.seed = (uint64_t)aim_opt_int("--seed", optarg, 0, INT64_MAX); break;
		case 'o': o->output = optarg; break;
		case 'm': o->model = optarg; break;
		case OPT_ARCH: o->arch = optarg; break;
		case OPT_DEVICE: o->device = aim_opt_device(optarg); break;
		case OPT_PRECISION: o->precision = aim_opt_precision(optarg); break;
		case OPT_LAYERS: o->layers = optarg; break;
		case OPT_MASK:
			if ((o->causal = aim_probe_mask_parse(optarg)) < 0)
				aim_usage_error("unknown --mask '%s' (none, causal)", optarg);
			break;
		case OPT_INIT: o->hp.init = optarg; break;
		case OPT_TUNE:
			if (!strcmp(optarg, "lora")) o->tune.kind = AIM_TUNE_LORA;
			else if (!strcmp(optarg, "full")) o->tune.kind = AIM_TUNE_FULL;
			else if (!strcmp(optarg, "adapter")) o->tune.kind = AIM_TUNE_ADAPTER;
			else if (!strcmp(optarg, "prompt")) o->tune.kind = AIM_TUNE_PROMPT;
			else aim_usage_error("--tune: '%s' is not lora, full, adapter or prompt", optarg);
			break;
		case OPT_LORA_RANK:
			o->tune.rank = (int)aim_opt_int("--lora-rank", optarg, 1, 65536);
			tune_opts |= 1 << AIM_TUNE_LORA;
			break;
		case OPT_LORA_ALPHA:
			o->tune.alpha = aim_opt_float("--lora-alpha", optarg, 1e-9, 1e9);
			tune_opts |= 1 << AIM_TUNE_LORA;
			break;
		case OPT_LORA_TARGETS:
			if (aim_lora_parse_targets(optarg, &o->tune.targets))
				aim_usage_error("--lora-targets: %s", aim_errmsg());
			tune_opts |= 1 << AIM_TUNE_LORA;
			break;
		case OPT_ADAPTER_DIM:
			o->tune.adapter_dim = (int)aim_opt_int("--adapter-dim", optarg, 1, 65536);
			tune_opts |= 1 << AIM_TUNE_ADAPTER;
			break;
		case OPT_PROMPTS:
			o->tune.prompts = (int)aim_opt_int("--prompts", optarg, 1, 65536);
			tune_opts |= 1 << AIM_TUNE_PROMPT;
			break;
		case OPT_DEEP: o->tune.deep = 1; tune_opts |= 1 << AIM_TUNE_PROMPT; break;
		case OPT_LAYER_DECAY:
			o->layer_decay = aim_opt_float("--layer-decay", optarg, 1e-6, 1);
			tune_opts |= 1 << AIM_TUNE_FULL;
			break;
		case OPT_DROP_PATH:
			o->drop_path = aim_opt_float("--drop-path", optarg, 0, 0.999);
			break;
		case OPT_ACCUM: o->accum = (int)aim_opt_int("--accum", optarg, 1, 1 << 20); break;
		case OPT_ADAPTER_OUT: o->adapter_out = optarg; break;
		case OPT_MODEL_OUT: o->model_out = optarg; break;
		case OPT_ADAPTER: o->adapter = optarg; break;
		default: aim_common_option(c, optarg);
		}
	}
	if (!o->output)
		aim_usage_error("an output file is required (-o HEAD.safetensors)");
	if (!o->model && (o->arch || o->layers || o->device || o->precision || o->causal ||
			  o->adapter || o->tune.kind))
		aim_usage_error("--arch, --layers, --mask, --device, --precision, --adapter and --tune "
				"need -m MODEL");
	if (o->tune.kind && o->causal)
		aim_usage_error("--tune trains the trunk with bidirectional attention: not with "
				"--mask causal");
	aim_tune_kind k = o->tune.kind;
	static const char *const opt_of[] = {"", "--lora-*", "--layer-decay", "--adapter-dim",
					     "--prompts/--deep"};
	for (int i = AIM_TUNE_LORA; i <= AIM_TUNE_PROMPT; i++)
		if ((tune_opts & (1 << i)) && (int)k != i)
			aim_usage_error("%s: needs --tune %s", opt_of[i], aim_tune_kind_name(i));
	if (!k && (o->adapter_out || o->model_out || o->accum != 1 || o->drop_path > 0))
		aim_usage_error("--adapter-out, --model-out, --accum and --drop-path need --tune");
	if (k == AIM_TUNE_ADAPTER && o->drop_path > 0)
		aim_usage_error("--drop-path: not with --tune adapter (the adapter is the MLP "
				"branch's own residual)");
	if (k == AIM_TUNE_FULL && o->adapter_out)
		aim_usage_error("--adapter-out: full fine-tuning has no adapter; use --model-out FILE");
	if (k && k != AIM_TUNE_FULL && o->model_out)
		aim_usage_error("--model-out: only --tune full changes the trunk; use --adapter-out DIR");
	if (k && o->adapter)
		aim_usage_error("--adapter and --tune together: apply the adapter with aim-tensor "
				"merge first, or tune from the plain model");
	if (k && o->hp.nlr != 1)
		aim_usage_error("--tune trains one trunk: give one --lr");
	if (o->accum > o->hp.batch)
		aim_usage_error("--accum %d: more micro-batches than the %d images of a batch",
				o->accum, o->hp.batch);
	if (o->tune.alpha < 0)
		o->tune.alpha = o->tune.rank;
	if (o->hp.warmup < 0)
		o->hp.warmup = o->hp.epochs / 10.0;
	if (o->hp.warmup > o->hp.epochs)
		aim_usage_error("--warmup: %g epochs is longer than --epochs %d", o->hp.warmup, o->hp.epochs);
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
}

/* What the heads are about to learn, and each head's epoch. */
static void say_heads(const aim_probe_trainer *tr)
{
	if (tr->cfg.kind == AIM_PROBE_ATTENTIVE)
		aim_info("attentive head: %d heads, %d queries, dimension %lld, %d classes",
			 tr->cfg.heads, tr->cfg.queries, (long long)tr->D, tr->C);
	else
		aim_info("linear head: dimension %lld, %d classes", (long long)tr->D, tr->C);
}

static void say_epoch(const aim_probe_trainer *tr, int epoch)
{
	for (int i = 0; i < tr->hp->nlr; i++) {
		const aim_probe_trainee *t = &tr->t[i];
		double seen = (double)(t->seen ? t->seen : 1);
		aim_info("epoch %d/%d lr %g: loss %.4f  train top-1 %.2f", epoch + 1, tr->hp->epochs,
			 t->lr, t->loss_sum / seen, 100.0 * (double)t->correct / seen);
	}
}

static double running_loss(const aim_probe_trainer *tr)
{
	return tr->t[0].loss_sum / (double)(tr->t[0].seen ? tr->t[0].seen : 1);
}

static void start(aim_probe_trainer *tr, const probe_opts *o, const aim_record *meta, int64_t K,
		  int64_t D, int C, int model_heads)
{
	if (o->hp.kind == AIM_PROBE_ATTENTIVE && K == 1)
		aim_warn("the features are pooled ([B, D]): attention over a single token "
			 "reduces the attentive head to a linear map");
	int heads = 0;
	if (o->hp.kind == AIM_PROBE_ATTENTIVE &&
	    (heads = aim_probe_heads(&o->hp, meta, D, model_heads)) < 0)
		aim_die_status(heads);
	if (o->hp.kind == AIM_PROBE_ATTENTIVE && !o->hp.heads && !model_heads &&
	    !aim_features_heads(meta) && aim_self.verbose)
		aim_info("the features carry no aim.config: %d attention heads of width %lld "
			 "(the default for dimension %lld; --heads N to choose)",
			 heads, (long long)(D / heads), (long long)D);
	if (aim_probe_trainer_init(tr, &o->hp, K, D, C, heads))
		aim_die_status(AIM_ERR);
	say_heads(tr);
}

/* Features files or stdin: every epoch draws all samples once, shuffled. */
static void train_on_features(aim_probe_trainer *tr, const probe_opts *o, aim_record *meta)
{
	aim_probe_samples src;
	const char *what = o->ninputs ? o->inputs[0] : "stdin";
	if (aim_probe_samples_open(&src, (const char *const *)o->inputs, o->ninputs, o->hp.seed,
				   o->shuffle_mb))
		aim_die_status(AIM_ERR);
	if (src.loops)
		aim_warn("%s: the stream loops (aim.epoch %d): its first pass is the data and the "
			 "rest is not read (-m trains on every pass)", what, src.loops);
	if (src.in_memory)
		aim_info("read the stream from standard input into memory (it is read once and held "
			 "for every epoch): held %lld samples (%.1f MB)", (long long)src.nall,
			 (double)src.nall * (double)src.sample_bytes / 1e6);
	if (src.unlabelled)
		aim_warn("%lld samples without a label (-1) are left out of training",
			 (long long)src.unlabelled);
	int C = aim_probe_class_count(o->classes, &src.meta, src.max_label, what);
	if (C < 0)
		aim_die_status(C);
	start(tr, o, &src.meta, src.K, src.D, C, 0);
	aim_info("%lld training samples of [%lld, %lld], %d learning rate(s)",
		 (long long)src.total, (long long)src.K, (long long)src.D, o->hp.nlr);
	int64_t B = o->hp.batch;
	float *x = malloc((size_t)(B * src.K * src.D) * sizeof(float));
	int64_t *y = malloc((size_t)B * sizeof(int64_t));
	if (!x || !y)
		aim_die("out of memory for a batch of %lld", (long long)B);
	aim_progress prog;
	aim_progress_start(&prog, 30);
	int64_t all = 0; /* samples of every epoch, for the rate */
	for (int epoch = 0; epoch < o->hp.epochs; epoch++) {
		if (aim_probe_samples_start_epoch(&src))
			aim_die_status(AIM_ERR);
		aim_probe_trainer_start_epoch(tr);
		int64_t n, done = 0;
		while ((n = aim_probe_samples_batch(&src, x, y, B)) > 0) {
			double progress = epoch + ((double)done + 0.5 * (double)n) / (double)src.total;
			if (aim_probe_trainer_step(tr, x, y, n, progress))
				aim_die_status(AIM_ERR);
			done += n;
			all += n;
			aim_progress_count(&prog, all, "samples",
					   (epoch + (double)done / (double)src.total) / o->hp.epochs,
					   "epoch %d/%d, loss %.4f", epoch + 1, o->hp.epochs, running_loss(tr));
		}
		if (n < 0)
			aim_die_status((int)n);
		aim_progress_end(&prog);
		say_epoch(tr, epoch);
	}
	aim_record_copy(meta, &src.meta);
	free(x), free(y);
	aim_probe_samples_close(&src);
}

/* --tune: the trunk side trained with the head (NULL tt: a frozen trunk). */
typedef struct {
	aim_tune_trainer tt;
	int on, started;
	double t0;
	int64_t images;      /* trained so far, every epoch */
	aim_labelled lab;    /* labelled patches of one batch */
} tuning;

/* The end of an epoch: its line, and with --tune the --val accuracy now. */
static void epoch_done(aim_probe_trainer *tr, const probe_opts *o, aim_trunk_features *tf,
		       const aim_record *meta, tuning *tu, int epoch)
{
	say_epoch(tr, epoch);
	if (!tu->on || !o->val)
		return;
	if (aim_probe_trainer_validate(tr, o->val, tf, meta))
		aim_die_status(AIM_ERR);
	aim_info("epoch %d/%d: val top-1 %.2f  top-5 %.2f  loss %.4f (n %lld)", epoch + 1,
		 o->hp.epochs, tr->t[0].val_top1, tr->t[0].val_top5, tr->t[0].val_loss,
		 (long long)tr->t[0].val_n);
}

/* One batch of --tune (aim_tune_trainer_batch), counted in the first
 * trainee's running figures. */
static void tune_batch(aim_probe_trainer *tr, const probe_opts *o, aim_trunk_features *tf,
		       tuning *tu, const aim_record *r, const char *what, const int64_t *labels,
		       double progress)
{
	double f = aim_head_lr_schedule(1.0, progress, o->hp.warmup, o->hp.epochs), loss;
	int64_t n, correct;
	if (aim_tune_trainer_batch(&tu->tt, tf, r, what, labels, o->hp.lr[0] * f,
				   o->hp.weight_decay, &tu->lab, &n, &loss, &correct))
		aim_die_status(AIM_ERR);
	if (!n)
		return;
	aim_probe_trainee *t = &tr->t[0];
	t->loss_sum += loss * (double)n;
	t->seen += n;
	t->correct += correct;
	tu->images += n;
}

/* Patches through the trunk (frozen, or trained with the head under
 * --tune). Epochs: the aim.epoch of a looping producer's records, else one
 * pass per re-read of the files. */
static void train_on_patches(aim_probe_trainer *tr, const probe_opts *o, aim_trunk_features *tf,
			     aim_record *meta, int *trained, tuning *tu)
{
	aim_reader *rd = aim_reader_open((const char *const *)o->inputs, o->ninputs);
	if (!rd)
		aim_die_status(AIM_ERR);
	int rewindable = aim_reader_rewindable(rd);
	int64_t per_epoch = rewindable ? aim_reader_count_labelled(rd) : 0; /* 0: not known yet */
	if (per_epoch < 0)
		aim_die_status((int)per_epoch);
	aim_batcher *bt = aim_batcher_new(rd, o->hp.batch);
	if (!bt)
		aim_die_status(AIM_ERR);
	aim_record r;
	aim_record_init(&r);
	aim_label_buf lb = {0};
	aim_labelled lab = {0};
	int epoch = 0, by_meta = -1, started = 0;
	int64_t done = 0, all = 0;
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
			epoch_done(tr, o, tf, meta, tu, epoch);
			if (by_meta == 1) {
				epoch++;
				break;
			}
			if (!per_epoch)
				per_epoch = done;
			if (++epoch == o->hp.epochs)
				break;
			if (!rewindable)
				aim_die("the patches stream ended after %d of %d epochs: stdin is read "
					"once; use a looping producer (aim-patchify --epochs %d) or files",
					epoch, o->hp.epochs, o->hp.epochs);
			aim_batcher_free(bt);
			if (aim_reader_rewind(rd) || !(bt = aim_batcher_new(rd, o->hp.batch)))
				aim_die_status(AIM_ERR);
			aim_probe_trainer_start_epoch(tr);
			done = 0;
			continue;
		}
		const char *what = aim_reader_where(rd);
		int e = aim_record_epoch(&r);
		if (by_meta < 0)
			by_meta = e >= 0;
		if (by_meta && e < 0)
			aim_die("%s: aim.epoch missing after records that carried it", what);
		if (by_meta && e != epoch) {
			if (e < epoch)
				aim_die("%s: aim.epoch went back from %d to %d", what, epoch, e);
			if (started) {
				aim_progress_end(&prog);
				epoch_done(tr, o, tf, meta, tu, epoch);
			}
			if (!per_epoch)
				per_epoch = done;
			epoch = e;
			if (epoch >= o->hp.epochs)
				break; /* the producer may loop on: we have what we need */
			aim_probe_trainer_start_epoch(tr);
			done = 0;
		}
		const float *feat = NULL;
		int64_t B, K;
		if (tu->on) { /* the features change with the trunk: only the geometry now */
			aim_geometry g;
			if (aim_patches_geometry(&g, &r, &tf->m->cfg, what))
				aim_die_status(AIM_ERR);
			B = aim_record_find(&r, "patches")->shape[0];
			K = g.K;
		} else if (aim_trunk_features_run(tf, &r, what, &feat, &B, &K)) {
			aim_die_status(AIM_ERR);
		}
		if (!started) {
			int C = aim_probe_class_count(o->classes, &r, -1, what);
			if (C < 0)
				aim_die_status(C);
			start(tr, o, &r, K, tf->m->cfg.dim, C, tf->m->cfg.heads);
			aim_record_copy(meta, &r);
			for (int i = meta->n - 1; i >= 0; i--)
				aim_record_remove(meta, meta->t[i].name);
			aim_probe_trainer_start_epoch(tr);
			started = 1;
			if (tu->on) {
				int micro = (o->hp.batch + o->accum - 1) / o->accum;
				if (aim_tune_trainer_init(&tu->tt, tf->m, &tr->t[0].head, tf->layers, tf->nl,
							  micro, o->hp.smoothing, o->layer_decay) ||
				    aim_tune_trainer_set_drop_path(&tu->tt, o->drop_path, o->hp.seed))
					aim_die_status(AIM_ERR);
				size_t trunk = 0;
				for (int i = 0; i < tf->m->nparams; i++)
					trunk += tf->m->info[i].numel;
				aim_info("--tune %s: %zu trainable trunk-side values (%.3f%% of the trunk's "
					 "%zu), micro-batches of %d", aim_tune_kind_name(o->tune.kind),
					 tu->tt.trainable, 100.0 * (double)tu->tt.trainable / (double)trunk,
					 trunk, micro);
				tu->t0 = aim_now();
			}
		}
		if (K != tr->K)
			aim_die("%s: %lld patches per image after %lld", what, (long long)K,
				(long long)tr->K);
		const int64_t *labels;
		if (aim_record_labels(&r, B, what, &lb, &labels))
			aim_die_status(AIM_ERR);
		if (!labels)
			aim_die("%s: no 'label' tensor: aim-probe needs labelled images", what);
		if (tu->on) {
			int64_t before = tu->images;
			double frac = per_epoch ? ((double)done + 0.5 * (double)B) / (double)per_epoch : 0.5;
			tune_batch(tr, o, tf, tu, &r, what, labels, epoch + (frac > 1 ? 1 : frac));
			done += tu->images - before;
			double el = aim_now() - tu->t0, rate = (double)tu->images / (el > 0 ? el : 1);
			int64_t total = per_epoch * o->hp.epochs;
			double eta = total && rate > 0 ? (double)(total - tu->images) / rate : -1;
			char etas[32] = "?";
			if (eta >= 0)
				snprintf(etas, sizeof etas, "%.0f s", eta);
			aim_progress_update(&prog, "epoch %d/%d, %lld images, loss %.4f, %.1f images/s, "
					    "ETA %s", epoch + 1, o->hp.epochs, (long long)done,
					    running_loss(tr), rate, etas);
			continue;
		}
		/* keep the labelled images only */
		int64_t n = aim_keep_labelled(&lab, feat, labels, B, (size_t)(K * tr->D));
		if (n < 0)
			aim_die("out of memory");
		if (!n)
			continue;
		/* while the size of a pass is unknown (the first pass of a stream),
		 * the schedule holds the value of the middle of that pass */
		double frac = per_epoch ? ((double)done + 0.5 * (double)n) / (double)per_epoch : 0.5;
		if (frac > 1)
			frac = 1;
		if (aim_probe_trainer_step(tr, lab.x, lab.y, n, epoch + frac))
			aim_die_status(AIM_ERR);
		done += n;
		all += n;
		/* known once a pass has been counted, or from the files' sizes */
		double pass = per_epoch ? frac : aim_reader_fraction(rd);
		aim_progress_count(&prog, all, "images", pass >= 0 ? (epoch + pass) / o->hp.epochs : -1,
				   "epoch %d/%d, loss %.4f", epoch + 1, o->hp.epochs, running_loss(tr));
	}
	aim_progress_end(&prog);
	if (!started)
		aim_die("%s: no images", o->ninputs ? o->inputs[0] : "stdin");
	if (epoch < o->hp.epochs)
		aim_warn("the patches stream ended after %d of %d epochs", epoch, o->hp.epochs);
	*trained = 1;
	aim_labelled_free(&lab);
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

	aim_probe_trainer tr;
	aim_record meta; /* the stream's metadata, for the head file */
	aim_record_init(&meta);
	aim_model *model = NULL;
	aim_trunk_features tf;
	memset(&tf, 0, sizeof tf);
	tuning tu;
	memset(&tu, 0, sizeof tu);
	uint64_t base_hash = 0;
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
		if (o.causal && aim_trunk_features_causal(&tf, o.model))
			aim_die_status(AIM_ERR);
		if (o.adapter) {
			char warn[1024];
			if (aim_tune_apply(model, o.adapter, NULL, warn, sizeof warn))
				aim_die_status(AIM_ERR);
			if (warn[0])
				aim_warn("%s", warn);
		}
		if (o.tune.kind) {
			base_hash = aim_trunk_hash(model);
			tu.on = 1;
			if (o.tune.kind != AIM_TUNE_FULL) {
				const aim_config *c = &model->cfg;
				if (o.tune.kind == AIM_TUNE_LORA &&
				    (o.tune.targets & (1u << AIM_LORA_FC3)) && c->mlp != AIM_MLP_SWIGLU)
					aim_usage_error("--lora-targets fc3: %s: an %s model's MLP has no "
							"fc3 (AIMv2's SwiGLU MLP has)", o.model,
							aim_config_family(c));
				if (aim_tune_attach_new(model, &o.tune, o.hp.seed))
					aim_die_status(AIM_ERR);
			}
		}
		int trained = 0;
		train_on_patches(&tr, &o, &tf, &meta, &trained, &tu);
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
	aim_probe_trainer_finish(&tr);
	const aim_probe_trainee *t = tr.t;
	if (o.val && !tu.on) { /* --tune validated after every epoch */
		if (aim_probe_trainer_validate(&tr, o.val, o.model ? &tf : NULL, &meta))
			aim_die_status(AIM_ERR);
		for (int i = 0; i < o.hp.nlr; i++)
			aim_info("lr %g: val top-1 %.2f  top-5 %.2f  loss %.4f (n %lld)", t[i].lr,
				 t[i].val_top1, t[i].val_top5, t[i].val_loss, (long long)t[i].val_n);
	}
	int best = aim_probe_trainer_best(&tr, o.val != NULL);
	if (o.hp.nlr > 1)
		aim_info("keeping lr %g (best %s)", t[best].lr, o.val ? "val top-1" : "training loss");

	aim_record out;
	aim_record_init(&out);
	if (aim_probe_trainer_head_record(&tr, best, o.val != NULL, &meta, &out))
		aim_die_status(AIM_ERR);
	if (aim_st_write(o.output, &out))
		aim_die_status(AIM_ERR);
	aim_info("wrote %s (lr %g)", o.output, t[best].lr);
	if (o.adapter_out) {
		if (aim_tune_save(model->tune, o.adapter_out, o.model, base_hash))
			aim_die_status(AIM_ERR);
		aim_info("wrote the %s adapter to %s", aim_tune_kind_name(o.tune.kind), o.adapter_out);
	}
	if (o.model_out) {
		if (aim_head_write_model(model, &t[best].head, o.model_out))
			aim_die_status(AIM_ERR);
		aim_info("wrote the fine-tuned model to %s", o.model_out);
	}
	if (tu.on) {
		aim_tune_trainer_free(&tu.tt);
		aim_labelled_free(&tu.lab);
	}
	aim_record_free(&out);
	aim_probe_trainer_free(&tr);
	aim_record_free(&meta);
	if (model) {
		aim_trunk_features_free(&tf);
		aim_model_free(model);
	}
	return 0;
}
