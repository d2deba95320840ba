/* aim-train: AIM pretraining (next-patch pixel regression with a
 * prefix-causal trunk) on the CPU, and across processes with MPI.
 *
 *   aim-patchify --transform train --epochs 300 --shuffle DIR |
 *       aim-train --preset fmnist -o run/
 *
 * Reads a patches stream, trains trunk + pixel head with AdamW, and leaves
 * in RUNDIR checkpoints step-NNNNNNNN.safetensors (aim-extract loads them
 * as they are), log.csv, loss.png and predictions.png. --resume continues
 * exactly where the newest checkpoint stopped. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"
#include "err.h"
#include "model.h"
#include "model_load.h"
#include "safetensors.h"
#include "stream.h"
#include "train_chunks.h"
#include "train_ckpt.h"
#include "train_data.h"
#include "train_prefetch.h"
#include "train_log.h"
#include "train_preview.h"
#include "train_rng.h"
#include "train_shape.h"
#include "train_step.h"

static const char usage[] =
	"Usage: aim-train [options] -o RUNDIR [PATCHES...]\n"
	"       aim-train [options] --resume RUNDIR [PATCHES...]\n"
	"Pretrain an AIM trunk and pixel head on a patches stream (files or stdin).\n"
	"\n"
	"Model:\n"
	"  --preset NAME        fmnist, vit-s, aim-600M, aim-1B, aim-3B, aim-7B\n"
	"  --arch aim-v1|aimv2 the trunk's family (default aim-v1): aimv2 = RMSNorm,\n"
	"                       SwiGLU MLP, learned position table (the AIM v1 pixel\n"
	"                       objective either way)\n"
	"  --dim N --depth N --heads N --mlp-ratio R\n"
	"                       trunk shape by hand (override the preset)\n"
	"  --head-blocks N      pixel-head blocks (preset; default 2)\n"
	"  --head-dim N         pixel-head width (preset; default the trunk width)\n"
	"  --head KIND          pixel head: mlp (default), none (a linear map to pixels)\n"
	"                       or transformer (causal pre-norm transformer blocks)\n"
	"Objective (the paper's ablations; recorded in the checkpoint):\n"
	"  --order ORDER        raster (default), spiral, checkerboard or random\n"
	"  --attention A        prefix (default) or causal\n"
	"  --objective O        autoregressive (default) or masked\n"
	"  --mask-ratio R       masked: share of patches masked (default 0.75)\n"
	"  --init MODEL         start from these weights (trunk; pixel head if present)\n"
	"  --no-norm-pix        regress raw patches, not per-patch standardised ones\n"
	"Optimisation:\n"
	"  --batch N            images per step and process (default 64)\n"
	"  --accum N            split each batch into N micro-batches (default 1)\n"
	"  --steps N            optimiser steps (default 1000)\n"
	"  --minutes M          time budget: plan the schedule to end within M minutes\n"
	"  --lr X               peak learning rate (default 1e-3)\n"
	"  --warmup N           linear warmup steps (default 2.5% of the steps)\n"
	"  --min-lr X           learning rate at the end of the cosine (default 0)\n"
	"  --weight-decay X     AdamW weight decay (default 0.05)\n"
	"  --clip X             global gradient-norm clip, 0 for none (default 1.0)\n"
	"  --seed N             seed of initial weights, prefix lengths, masks and the\n"
	"                       random order (default 0)\n"
	"  --device DEV         cpu (default), cuda, cuda:N (GPU N) or auto (CUDA when\n"
	"                       usable, else the CPU)\n"
	"  --precision P        matrix products in fp32 (default), tf32 (GPU only) or\n"
	"                       bf16 (fp32 accumulation; GPU, or CPU with native bf16)\n"
	"Output:\n"
	"  -o, --output RUNDIR  run directory (created if needed)\n"
	"  --resume RUNDIR      continue from the newest checkpoint in RUNDIR\n"
	"  --save-every N       checkpoint every N steps (default 500) and at the end\n"
	"  --val FILE           validation patches stream (also shown in predictions.png)\n"
	"  --val-every N        validation loss every N steps (default: at checkpoints)\n"
	"  --chunks N           with --val: also the loss of each of N equal parts of the\n"
	"                       sequence (chunks.csv, chunks.png; default 4, 0: none)\n"
	"  --threads N          threads per process (default: all cores)\n"
	"  -q, --quiet          no progress messages\n"
	"  -v, --verbose        more messages (the backend in use)\n"
	"  --help, --version\n";

enum { OPT_PRESET = AIM_OPT_FIRST_TOOL, OPT_DIM, OPT_DEPTH, OPT_HEADS, OPT_MLP_RATIO,
       OPT_HEAD_BLOCKS, OPT_HEAD_DIM, OPT_INIT, OPT_NO_NORM_PIX, OPT_BATCH, OPT_ACCUM,
       OPT_STEPS, OPT_MINUTES, OPT_LR, OPT_WARMUP, OPT_MIN_LR, OPT_WD, OPT_CLIP, OPT_SEED,
       OPT_RESUME, OPT_SAVE_EVERY, OPT_VAL, OPT_VAL_EVERY, OPT_DEVICE, OPT_PRECISION, OPT_ARCH,
       OPT_HEAD, OPT_ORDER, OPT_ATTENTION, OPT_OBJECTIVE, OPT_MASK_RATIO, OPT_CHUNKS };

typedef struct {
	const char *preset, *init, *rundir, *resume, *val, *device, *precision;
	const char *arch; /* "aim-v1", "aimv2" or NULL (aim-v1, or what --init/--resume has) */
	int dim, depth, heads, head_blocks, head_dim;
	double mlp_ratio;
	int norm_pix;
	int batch, accum;
	long steps, warmup, save_every, val_every;
	int steps_given, batch_given, accum_given;
	double minutes, lr, min_lr, wd, clip;
	uint64_t seed;
	aim_variant v;
	int chunks;
	int order_given, attention_given, objective_given, mask_ratio_given, head_given;
	char **inputs;
	int ninputs;
} train_opts;

/* Every failure ends every rank of the job. */
static _Noreturn void fail(void)
{
	fprintf(stderr, "%s: %s\n", aim_self.name, aim_errmsg());
	aim_dist_abort(AIM_EXIT_FAILURE);
}

static void parse_options(train_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		AIM_COMMON_LONGOPTS,
		{"preset", required_argument, 0, OPT_PRESET},
		{"arch", required_argument, 0, OPT_ARCH},
		{"dim", required_argument, 0, OPT_DIM},
		{"depth", required_argument, 0, OPT_DEPTH},
		{"heads", required_argument, 0, OPT_HEADS},
		{"mlp-ratio", required_argument, 0, OPT_MLP_RATIO},
		{"head-blocks", required_argument, 0, OPT_HEAD_BLOCKS},
		{"head-dim", required_argument, 0, OPT_HEAD_DIM},
		{"init", required_argument, 0, OPT_INIT},
		{"no-norm-pix", no_argument, 0, OPT_NO_NORM_PIX},
		{"batch", required_argument, 0, OPT_BATCH},
		{"accum", required_argument, 0, OPT_ACCUM},
		{"steps", required_argument, 0, OPT_STEPS},
		{"minutes", required_argument, 0, OPT_MINUTES},
		{"lr", required_argument, 0, OPT_LR},
		{"warmup", required_argument, 0, OPT_WARMUP},
		{"min-lr", required_argument, 0, OPT_MIN_LR},
		{"weight-decay", required_argument, 0, OPT_WD},
		{"clip", required_argument, 0, OPT_CLIP},
		{"seed", required_argument, 0, OPT_SEED},
		{"device", required_argument, 0, OPT_DEVICE},
		{"precision", required_argument, 0, OPT_PRECISION},
		{"output", required_argument, 0, 'o'},
		{"resume", required_argument, 0, OPT_RESUME},
		{"save-every", required_argument, 0, OPT_SAVE_EVERY},
		{"val", required_argument, 0, OPT_VAL},
		{"val-every", required_argument, 0, OPT_VAL_EVERY},
		{"head", required_argument, 0, OPT_HEAD},
		{"order", required_argument, 0, OPT_ORDER},
		{"attention", required_argument, 0, OPT_ATTENTION},
		{"objective", required_argument, 0, OPT_OBJECTIVE},
		{"mask-ratio", required_argument, 0, OPT_MASK_RATIO},
		{"chunks", required_argument, 0, OPT_CHUNKS},
		{0, 0, 0, 0},
	};
	memset(o, 0, sizeof *o);
	o->norm_pix = 1;
	o->batch = 64;
	o->accum = 1;
	o->steps = 1000;
	o->warmup = -1;
	o->save_every = 500;
	o->lr = 1e-3;
	o->wd = 0.05;
	o->clip = 1.0;
	o->head_blocks = -1;
	o->v = aim_variant_default();
	o->chunks = 4;
	int c;
	while ((c = getopt_long(argc, argv, "o:" AIM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PRESET: o->preset = optarg; break;
		case OPT_ARCH:
			if (strcmp(optarg, "aim-v1") && strcmp(optarg, "aimv2"))
				aim_usage_error("--arch: expected aim-v1 or aimv2, not '%s'", optarg);
			o->arch = optarg;
			break;
		case OPT_DIM: o->dim = (int)aim_opt_int("--dim", optarg, 4, 65536); break;
		case OPT_DEPTH: o->depth = (int)aim_opt_int("--depth", optarg, 1, AIM_MAX_BLOCKS); break;
		case OPT_HEADS: o->heads = (int)aim_opt_int("--heads", optarg, 1, 4096); break;
		case OPT_MLP_RATIO: o->mlp_ratio = aim_opt_float("--mlp-ratio", optarg, 0.01, 64); break;
		case OPT_HEAD_BLOCKS: o->head_blocks = (int)aim_opt_int("--head-blocks", optarg, 0, 100); break;
		case OPT_HEAD_DIM: o->head_dim = (int)aim_opt_int("--head-dim", optarg, 4, 65536); break;
		case OPT_INIT: o->init = optarg; break;
		case OPT_NO_NORM_PIX: o->norm_pix = 0; break;
		case OPT_BATCH:
			o->batch = (int)aim_opt_int("--batch", optarg, 1, 1 << 20);
			o->batch_given = 1;
			break;
		case OPT_ACCUM:
			o->accum = (int)aim_opt_int("--accum", optarg, 1, 1 << 20);
			o->accum_given = 1;
			break;
		case OPT_STEPS:
			o->steps = (long)aim_opt_int("--steps", optarg, 0, 99999999);
			o->steps_given = 1;
			break;
		case OPT_MINUTES: o->minutes = aim_opt_float("--minutes", optarg, 1e-3, 1e7); break;
		case OPT_LR: o->lr = aim_opt_float("--lr", optarg, 0, 10); break;
		case OPT_WARMUP: o->warmup = (long)aim_opt_int("--warmup", optarg, 0, 99999999); break;
		case OPT_MIN_LR: o->min_lr = aim_opt_float("--min-lr", optarg, 0, 10); break;
		case OPT_WD: o->wd = aim_opt_float("--weight-decay", optarg, 0, 10); break;
		case OPT_CLIP: o->clip = aim_opt_float("--clip", optarg, 0, 1e30); break;
		case OPT_SEED: o->seed = (uint64_t)aim_opt_int("--seed", optarg, 0, INT64_MAX); break;
		case OPT_DEVICE: o->device = aim_opt_device(optarg); break;
		case OPT_PRECISION: o->precision = aim_opt_precision(optarg); break;
		case 'o': o->rundir = optarg; break;
		case OPT_RESUME: o->resume = optarg; break;
		case OPT_SAVE_EVERY: o->save_every = (long)aim_opt_int("--save-every", optarg, 0, 99999999); break;
		case OPT_VAL: o->val = optarg; break;
		case OPT_VAL_EVERY: o->val_every = (long)aim_opt_int("--val-every", optarg, 0, 99999999); break;
		case OPT_HEAD:
			o->v.head = aim_opt_head(optarg);
			o->head_given = 1;
			break;
		case OPT_ORDER:
			o->v.order = aim_opt_order(optarg);
			o->order_given = 1;
			break;
		case OPT_ATTENTION:
			o->v.attention = aim_opt_attention(optarg);
			o->attention_given = 1;
			break;
		case OPT_OBJECTIVE:
			o->v.objective = aim_opt_objective(optarg);
			o->objective_given = 1;
			break;
		case OPT_CHUNKS: o->chunks = (int)aim_opt_int("--chunks", optarg, 0, 4096); break;
		case OPT_MASK_RATIO:
			o->v.mask_ratio = aim_opt_float("--mask-ratio", optarg, 1e-6, 0.999999);
			o->mask_ratio_given = 1;
			break;
		default: aim_common_option(c, optarg);
		}
	}
	if (!o->rundir)
		o->rundir = o->resume;
	if (!o->rundir)
		aim_usage_error("a run directory is required (-o RUNDIR or --resume RUNDIR)");
	if (!o->preset && !o->init && !o->resume && (!o->dim || !o->depth || !o->heads))
		aim_usage_error("give --preset, --init, --resume or all of --dim, --depth and --heads");
	if (o->batch % o->accum)
		aim_usage_error("--batch %d is not a multiple of --accum %d", o->batch, o->accum);
	if (o->preset && !aim_train_preset_find(o->preset))
		aim_usage_error("unknown --preset '%s' (fmnist, vit-s, aim-600M, aim-1B, "
				"aim-3B, aim-7B)", o->preset);
	if (o->v.objective == AIM_OBJ_MASKED && o->v.order != AIM_ORDER_RASTER)
		aim_usage_error("--objective masked has no --order (its attention is bidirectional)");
	if (o->v.objective == AIM_OBJ_MASKED && o->v.attention != AIM_ATTN_PREFIX)
		aim_usage_error("--objective masked takes no --attention (it is bidirectional)");
	if (o->mask_ratio_given && o->v.objective != AIM_OBJ_MASKED && !o->resume)
		aim_usage_error("--mask-ratio needs --objective masked");
	if (o->v.head == AIM_HEAD_NONE && (o->head_blocks >= 0 || o->head_dim))
		aim_usage_error("--head none has no blocks or width (--head-blocks, --head-dim)");
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
}

/* The architecture of a new run (train_shape.h). */
static void new_config(const train_opts *o, const aim_geometry *g, aim_config *c, int *head_blocks,
		       int *head_dim)
{
	aim_train_shape sh = {o->preset, o->arch, o->dim, o->depth, o->heads, o->head_blocks,
			      o->head_dim, o->mlp_ratio, o->v.head};
	if (aim_train_new_config(&sh, g, c, head_blocks, head_dim))
		fail();
}

/* The stream must fit the model: same patch, channels and grid. */
static void check_fit(const aim_config *c, const aim_geometry *g, const char *what)
{
	if (aim_train_check_fit(c, g, what))
		fail();
}

/* Everything one run holds. */
typedef struct {
	train_opts o;
	int rank, world;
	int resuming;
	char ckpath[4096];       /* the checkpoint resumed from */
	aim_stfile ck;
	aim_train_state st;
	aim_source src;
	aim_geometry g;
	aim_config cfg;
	aim_model *model;
	aim_trainer tr;
	float *val, *shown;      /* validation images; the preview's images */
	int nval, nshown;
	aim_trainlog log;
	aim_chunklog chunks;
	double *chunk_loss;      /* [o.chunks] of the latest validation */
	aim_schedule sched;
} train_run;

/* --resume: the newest checkpoint and its training state. */
static void open_checkpoint(train_run *r)
{
	if (aim_ckpt_resume(r->o.resume, r->ckpath, sizeof r->ckpath, &r->ck, &r->st))
		fail();
	r->resuming = 1;
}

static void open_input(train_run *r)
{
	/* mpirun hands standard input to rank 0 alone. */
	const train_opts *o = &r->o;
	if (r->world > 1 && (o->ninputs == 0 || (o->ninputs == 1 && !strcmp(o->inputs[0], "-")))) {
		aim_error("with %d processes every one reads the input: name the input files "
			  "(standard input reaches rank 0 only)", r->world);
		fail();
	}
	if (aim_source_open(&r->src, (const char *const *)o->inputs, o->ninputs, r->rank, r->world))
		fail();
	int rc = aim_source_geometry(&r->src);
	if (rc < 0)
		fail();
	if (rc == 0) {
		aim_error("%s: the input holds no images", o->ninputs ? o->inputs[0] : "stdin");
		fail();
	}
	r->g = r->src.geom;
}

/* --arch must name the family of the weights a run continues from. */
static void check_arch(const train_opts *o, const aim_config *c, const char *what)
{
	if (o->arch && strcmp(o->arch, aim_config_family(c))) {
		aim_error("%s: an %s trunk, not --arch %s", what, aim_config_family(c), o->arch);
		fail();
	}
}

/* The trunk, from the resumed checkpoint, --init, or new; and the head's
 * shape (st.head_*). Returns 1 when the head's weights come from --init
 * (left open in *initf). */
static int build_model(train_run *r, aim_stfile *initf)
{
	const train_opts *o = &r->o;
	int head_blocks = 0, head_dim = 0, head_from_init = 0;
	if (r->resuming) {
		const char *cj = aim_record_get_meta(&r->ck.rec, "aim.config");
		if (!cj) {
			aim_error("%s: no aim.config metadata", r->ckpath);
			fail();
		}
		if (aim_config_from_json(&r->cfg, cj, r->ckpath))
			fail();
		check_arch(o, &r->cfg, r->ckpath);
		check_fit(&r->cfg, &r->g, r->ckpath);
		if (aim_model_create(&r->model, &r->cfg, NULL) || aim_model_alloc_params(r->model) ||
		    aim_ckpt_load_trunk(r->model, &r->ck.rec, r->ckpath))
			fail();
		return 0;
	}
	if (o->init) {
		aim_load_opts lo = {0};
		/* A published checkpoint without a config takes its shape from
		 * the published preset of the same name. */
		if (o->preset && !strncasecmp(o->preset, "aim-", 4))
			lo.arch = o->preset;
		if (aim_model_load(&r->model, o->init, &lo) || aim_model_alloc_params(r->model))
			fail();
		r->cfg = r->model->cfg;
		check_arch(o, &r->cfg, o->init);
		check_fit(&r->cfg, &r->g, o->init);
		aim_config shape;
		new_config(&(train_opts){.preset = o->preset, .dim = r->cfg.dim,
					 .depth = r->cfg.depth, .heads = r->cfg.heads,
					 .head_blocks = o->head_blocks, .head_dim = o->head_dim,
					 .v = o->v},
			   &r->g, &shape, &head_blocks, &head_dim);
		if (aim_st_open(initf, o->init) == 0)
			head_from_init = aim_pixel_head_shape_in(&initf->rec, o->v.head, &head_blocks, &head_dim);
		aim_error_clear();
	} else {
		new_config(o, &r->g, &r->cfg, &head_blocks, &head_dim);
		if (aim_model_create(&r->model, &r->cfg, NULL) || aim_model_alloc_params(r->model) ||
		    aim_model_init_params(r->model, aim_rng_at(o->seed, AIM_RNG_INIT, 0)))
			fail();
	}
	r->st.head_blocks = head_blocks;
	r->st.head_dim = head_dim;
	return head_from_init;
}

/* The training state: new from the options, or the resumed one with what
 * may change on resuming (steps, batch, accumulation, processes). */
static void settle_state(train_run *r)
{
	const train_opts *o = &r->o;
	aim_train_state *st = &r->st;
	if (!r->resuming) {
		st->seed = o->seed;
		st->batch = o->batch;
		st->accum = o->accum;
		st->lr = o->lr;
		st->min_lr = o->min_lr;
		st->weight_decay = o->wd;
		st->clip = o->clip;
		st->beta1 = 0.9;
		st->beta2 = 0.95;
		st->eps = 1e-8;
		st->total = o->steps;
		st->warmup = o->warmup >= 0 ? o->warmup : (long)lround(0.025 * o->steps);
		st->norm_pix = o->norm_pix;
		st->v = o->v;
	} else {
		/* The variant is the run's: resumed as recorded. */
		const aim_variant *v = &st->v;
		const char *differs = o->order_given && o->v.order != v->order ? "--order"
			: o->attention_given && o->v.attention != v->attention ? "--attention"
			: o->objective_given && o->v.objective != v->objective ? "--objective"
			: o->mask_ratio_given && o->v.mask_ratio != v->mask_ratio ? "--mask-ratio"
			: o->head_given && o->v.head != v->head ? "--head" : NULL;
		if (differs) {
			aim_error("%s: the run was trained with order %s, %s attention, %s objective "
				  "(mask ratio %g), %s head; %s cannot change on resuming", r->ckpath,
				  aim_order_name(v->order), aim_attn_name(v->attention),
				  aim_objective_name(v->objective), v->mask_ratio,
				  aim_head_name(v->head), differs);
			fail();
		}
		if (o->steps_given && o->steps != st->total) {
			aim_info("schedule extended from %ld to %ld steps", st->total, o->steps);
			st->total = o->steps;
		}
		if (o->batch_given)
			st->batch = o->batch;
		if (o->accum_given)
			st->accum = o->accum;
		if (r->world != st->world || o->batch_given || o->accum_given)
			aim_info("resuming with %d process%s x batch %d", r->world,
				 r->world == 1 ? "" : "es", st->batch);
	}
	st->world = r->world;
	if (st->batch % st->accum) {
		aim_error("batch %d is not a multiple of accum %d", st->batch, st->accum);
		fail();
	}
	r->sched = (aim_schedule){st->lr, st->min_lr, st->warmup, st->total};
}

/* Pixel head, optimiser and moments. */
static void make_trainer(train_run *r, aim_stfile *initf, int head_from_init)
{
	aim_train_state *st = &r->st;
	aim_trainer *tr = &r->tr;
	if (aim_trainer_init_variant(tr, r->model, &st->v, st->head_blocks, st->head_dim, &r->g,
				     st->norm_pix, st->seed, st->batch / st->accum))
		fail();
	tr->optim.beta1 = st->beta1;
	tr->optim.beta2 = st->beta2;
	tr->optim.eps = st->eps;
	tr->optim.weight_decay = st->weight_decay;
	if (r->resuming) {
		if (aim_pixel_head_from_record(&tr->head, &r->ck.rec, r->ckpath) ||
		    (tr->mtok && aim_ckpt_load_mask_token(tr->mtok, r->cfg.dim, &r->ck.rec,
							  r->ckpath)) ||
		    aim_ckpt_load_moments(&tr->optim, &r->ck.rec, r->ckpath))
			fail();
		aim_st_close(&r->ck);
	} else if (head_from_init) {
		if (aim_pixel_head_from_record(&tr->head, &initf->rec, r->o.init))
			fail();
		if (tr->mtok && aim_ckpt_load_mask_token(tr->mtok, r->cfg.dim, &initf->rec, r->o.init))
			aim_trainer_init_mask_token(tr); /* a trunk without one: a new token */
		aim_error_clear();
	} else {
		aim_rng rng;
		aim_rng_init(&rng, st->seed, AIM_RNG_INIT);
		rng.next = 1u << 30; /* apart from the trunk's draws */
		aim_pixel_head_init_random(&tr->head, &rng);
		aim_trainer_init_mask_token(tr);
	}
	if (initf->map)
		aim_st_close(initf);
	/* The state is loaded on the host; the first step uploads it. */
	const aim_backend *be = aim_backend_for_rank(r->o.device ? r->o.device : "cpu");
	if (!be || aim_backend_set_precision(be, r->o.precision) ||
	    aim_trainer_set_backend(tr, be))
		fail();
	if (aim_self.verbose)
		aim_info("backend: %s", aim_backend_line(be));
}

/* Rank 0: the run directory, log.csv and the validation images. */
static void open_outputs(train_run *r)
{
	if (r->rank != 0)
		return;
	if (aim_mkdir(r->o.rundir))
		fail();
	if (r->resuming)
		aim_ckpt_remove_partial(r->o.rundir);
	if (aim_trainlog_open(&r->log, r->o.rundir, r->resuming ? r->st.step : -1))
		fail();
	if (r->o.val) {
		if (!(r->val = aim_train_read_val(r->o.val, &r->g, &r->nval)))
			fail();
		if (r->o.chunks &&
		    (aim_chunklog_open(&r->chunks, r->o.rundir, r->o.chunks,
				       r->resuming ? r->st.step : -1) ||
		     !(r->chunk_loss = malloc(sizeof(double) * r->o.chunks))))
			fail();
		r->shown = r->val;
		r->nshown = r->nval < 4 ? r->nval : 4;
	}
}

/* Rank 0: checkpoint, loss.png, predictions.png. */
static void save_outputs(train_run *r)
{
	char path[4096];
	aim_trainer_sync_host(&r->tr); /* the device's state into model, head, moments */
	if (aim_ckpt_save(r->o.rundir, r->model, &r->tr.head, &r->tr.optim, &r->st, r->tr.mtok))
		fail();
	snprintf(path, sizeof path, "%s/loss.png", r->o.rundir);
	if (aim_trainlog_plot(&r->log, path))
		fail();
	snprintf(path, sizeof path, "%s/predictions.png", r->o.rundir);
	if (r->nshown && aim_preview_write(path, &r->tr, r->shown, r->nshown, r->st.step))
		fail();
}

/* --minutes: once three steps have run, plan how many fit the budget, and
 * plan again at step 30 when the first steps' start-up costs no longer
 * weigh (rank 0 decides for all). --steps, when given, stays the most. */
static void plan_budget(train_run *r, double elapsed, double per_step)
{
	double total = (double)r->st.step + floor((r->o.minutes * 60 * 0.98 - elapsed) / per_step);
	if (r->rank != 0)
		total = 0;
	if (aim_dist_allreduce_f64(&total, 1))
		fail();
	if (r->o.steps_given && total > r->o.steps)
		total = (double)r->o.steps;
	if ((long)total == r->st.total)
		return;
	r->st.total = total > r->st.step ? (long)total : r->st.step;
	if (r->o.warmup < 0 && !r->resuming)
		r->st.warmup = (long)lround(0.025 * r->st.total);
	r->sched.total = r->st.total;
	r->sched.warmup = r->st.warmup;
	aim_info("time budget of %g minutes: %ld steps", r->o.minutes, r->st.total);
}

/* 1 on every rank when any rank says yes. */
static int any_rank(int yes)
{
	double v = yes;
	if (aim_dist_allreduce_f64(&v, 1))
		fail();
	return v > 0;
}

int main(int argc, char **argv)
{
	aim_prog_init("aim-train", usage);
	if (aim_dist_init(&argc, &argv)) {
		fprintf(stderr, "aim-train: %s\n", aim_errmsg());
		return AIM_EXIT_FAILURE;
	}
	static train_run run;
	train_run *r = &run;
	parse_options(&r->o, argc, argv);
	aim_apply_threads();
	r->rank = aim_dist_rank();
	r->world = aim_dist_size();
	if (r->rank != 0)
		aim_self.quiet = 1;

	/* Set up: checkpoint, input, model, state, trainer, outputs. */
	if (r->o.resume)
		open_checkpoint(r);
	open_input(r);
	aim_stfile initf = {0};
	int head_from_init = build_model(r, &initf);
	settle_state(r);
	make_trainer(r, &initf, head_from_init);
	if (r->st.samples && aim_source_skip_to(&r->src, r->st.samples) < 0)
		fail();
	open_outputs(r);
	aim_train_state *st = &r->st;
	const aim_geometry *g = &r->g;
	aim_info("%s: dim %d, depth %d, heads %d, head %d x %d, %d-channel %dx%d patches on %dx%d, "
		 "%ld parameters, %d process%s x batch %d",
		 r->resuming ? r->ckpath : "new run", r->cfg.dim, r->cfg.depth, r->cfg.heads,
		 st->head_blocks, st->head_dim, g->channels, g->patch, g->patch, g->rows, g->cols,
		 r->tr.optim.total, r->world, r->world == 1 ? "" : "es", st->batch);
	char variant[128];
	if (aim_variant_describe(&st->v, variant, sizeof variant))
		aim_info("%s", variant);

	const size_t per = (size_t)g->K * g->P;
	aim_prefetch input; /* the next batch is read while a step computes */
	if (aim_prefetch_start(&input, &r->src, st->batch, r->tr.be))
		fail();

	/* Train. */
	aim_progress prog;
	aim_progress_start(&prog, 10);
	const double t_start = aim_now();
	double t_first = 0, last_loss = NAN;
	long run_steps = 0, last_saved = r->resuming ? st->step : -1;
	int ended_early = 0;
	while (st->step < st->total) {
		double t0 = aim_now();
		const float *x;
		const uint64_t *gidx;
		int epoch_now;
		int got = aim_prefetch_next(&input, &x, &gidx, &epoch_now);
		if (got < 0)
			fail();
		/* Every rank must have a full batch, or all stop together. */
		if (any_rank(got < st->batch)) {
			ended_early = 1;
			break;
		}
		if (!r->shown && r->rank == 0) {
			r->nshown = st->batch < 4 ? st->batch : 4;
			r->shown = malloc(sizeof(float) * per * r->nshown);
			if (!r->shown)
				fail();
			memcpy(r->shown, x, sizeof(float) * per * r->nshown);
		}
		double loss, gnorm, lr = aim_schedule_lr(&r->sched, st->step);
		if (aim_trainer_gradients(&r->tr, x, gidx, st->batch, &loss))
			fail();
		aim_trainer_update(&r->tr, lr, st->clip, st->step, &gnorm);
		if (run_steps == 0 && r->rank == 0 && r->tr.group_note[0])
			aim_info("%s", r->tr.group_note);
		st->step++;
		st->samples += (uint64_t)st->batch * r->world;
		last_loss = loss;
		double now = aim_now(), dt = now - t0;
		double ips = st->batch * r->world / (dt > 0 ? dt : 1e-9);
		if (++run_steps == 1)
			t_first = now;

		/* A time budget fixes the schedule once the speed is known. */
		if (r->o.minutes > 0 && (run_steps == 3 || run_steps == 30))
			plan_budget(r, now - t_start, (now - t_first) / (run_steps - 1));
		if (r->o.minutes > 0 && st->step < st->total &&
		    any_rank(now - t_start > r->o.minutes * 60)) {
			aim_info("time budget of %g minutes spent at step %ld", r->o.minutes, st->step);
			st->total = st->step;
		}

		if (r->rank != 0)
			continue;
		int save = st->step == st->total || (r->o.save_every && st->step % r->o.save_every == 0);
		double vloss = NAN;
		if (r->val && (r->o.val_every ? st->step % r->o.val_every == 0 : save)) {
			if (aim_trainer_eval_chunks(&r->tr, r->val, r->nval, r->o.chunks, &vloss,
						    r->chunk_loss) ||
			    (r->o.chunks && aim_chunklog_add(&r->chunks, st->step, r->chunk_loss)))
				fail();
		}
		if (aim_trainlog_row(&r->log, st->step, loss, lr, gnorm, ips, vloss))
			fail();
		char eta[32], epoch[32] = "";
		aim_fmt_eta(eta, sizeof eta, (now - t_start) / run_steps * (st->total - st->step));
		if (epoch_now >= 0)
			snprintf(epoch, sizeof epoch, "  epoch %d", epoch_now);
		aim_progress_update(&prog, "step %ld/%ld  loss %.4f  %.1f img/s  ETA %s%s", st->step,
				    st->total, loss, ips, eta, epoch);
		if (save) {
			save_outputs(r);
			last_saved = st->step;
			if (!prog.tty && isnan(vloss))
				aim_info("step %ld: loss %.4f, checkpoint written", st->step, loss);
			else if (!prog.tty)
				aim_info("step %ld: loss %.4f, validation loss %.4f, checkpoint written",
					 st->step, loss, vloss);
		}
	}
	aim_progress_end(&prog);

	/* Report. */
	if (r->rank == 0 && last_saved != st->step)
		save_outputs(r);
	if (ended_early)
		aim_warn("the input ended after step %ld of %ld; final checkpoint written", st->step,
			 st->total);
	aim_info("done: step %ld, loss %.4f, %.1f s, checkpoint %s/step-%08ld.safetensors",
		 st->step, last_loss, aim_now() - t_start, r->o.rundir, st->step);

	if (r->rank == 0)
		aim_trainlog_close(&r->log);
	aim_chunklog_free(&r->chunks);
	free(r->chunk_loss);
	if (r->shown != r->val)
		free(r->shown);
	free(r->val);
	aim_prefetch_stop(&input);
	aim_source_close(&r->src);
	aim_trainer_free(&r->tr);
	aim_model_free(r->model);
	aim_dist_finalize();
	return AIM_EXIT_OK;
}
