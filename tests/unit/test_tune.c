/* The trunk's adaptations (model_tune.h, tune_io.h, probe_tune.h).
 *
 * Run without arguments: finite-difference checks of every trainable
 * gradient of LoRA (every target: fc3 too on AIMv2), adapters, shallow and
 * deep prompts and full fine-tuning on a tiny random trunk of each family
 * (AIM v1, AIMv2), through features averaged over two blocks below the top
 * (so the partial training forward is covered; AIMv2: through the
 * post-trunk norm, whose weight full fine-tuning trains); LoRA merged = unmerged; an adapter directory written and read
 * back; a wrong-shape adapter refused; fc3 on an AIM v1 trunk refused.
 *
 * Run as `test_tune dump MODEL ADAPTER|full|- HEAD PATCHES LAYERS MICRO OUT`
 * by tests/ref/test_tune_torch.sh: one joint step's logits, loss and every
 * trainable gradient, and the inference features unmerged and merged, for
 * the PyTorch reference to check. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "model_load.h"
#include "model_tune.h"
#include "probe_tune.h"
#include "safetensors.h"
#include "stream.h"
#include "trunk_features.h"
#include "tune_io.h"

enum { B = 2, ROWS = 2, COLS = 2, KP = ROWS * COLS };

static float *R;        /* weights of the scalar objective */
static unsigned char AT[AIM_MAX_BLOCKS];
static float *X;        /* patches */

static void fill(float *w, size_t n, double scale, uint64_t *s)
{
	for (size_t i = 0; i < n; i++) {
		*s = *s * 6364136223846793005ull + 1442695040888963407ull;
		w[i] = (float)((((double)(*s >> 11) / 9007199254740992.0) * 2 - 1) * scale);
	}
}

static int V2; /* the models below are AIMv2 ones (RMSNorm, SwiGLU, learned positions, no biases) */

/* L = Σ R ⊙ f, f the mean over blocks {0, 1} of their patch tokens (of 3
 * blocks); on AIMv2 f goes through the post-trunk norm, as the probe reads
 * it. The mean and the norm's statistics into avg, st when not NULL. */
static double objective_keep(aim_model *m, float *avg, float *st)
{
	aim_forward_opts fo = {.train = 1, .train_blocks = 2};
	if (aim_model_forward(m, X, B, ROWS, COLS, &fo) < 0)
		return NAN;
	size_t n = (size_t)B * KP * m->cfg.dim;
	float *f = calloc(n, sizeof(float)), *y = calloc(n, sizeof(float));
	float *s2 = calloc(2 * (size_t)B * KP, sizeof(float));
	aim_model_patch_tokens_add(m, 0, 0.5f, f);
	aim_model_patch_tokens_add(m, 1, 0.5f, f);
	if (V2)
		aim_model_post_norm_train(m, y, s2, f, (int64_t)B * KP);
	else
		memcpy(y, f, n * sizeof(float));
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)y[i] * R[i];
	if (avg)
		memcpy(avg, f, n * sizeof(float));
	if (st)
		memcpy(st, s2, 2 * (size_t)B * KP * sizeof(float));
	free(f), free(y), free(s2);
	return s;
}

static double objective(aim_model *m)
{
	return objective_keep(m, NULL, NULL);
}

static void gradients(aim_model *m)
{
	size_t n = (size_t)B * KP * m->cfg.dim;
	float *avg = malloc(n * sizeof(float)), *st = malloc(2 * (size_t)B * KP * sizeof(float));
	float *dy = calloc(n, sizeof(float));
	objective_keep(m, avg, st);
	if (m->tune)
		aim_tune_zero_grads(m->tune);
	if (!m->frozen)
		aim_model_zero_grads(m);
	if (V2)
		aim_model_post_norm_bwd(m, dy, R, avg, st, (int64_t)B * KP);
	else
		memcpy(dy, R, n * sizeof(float));
	CHECK(aim_model_backward_at(m, dy, AT, 0.5f) == 0);
	free(avg), free(st), free(dy);
}

/* Central differences on a sample of the entries of w against g. */
static void check_fd(aim_model *m, const char *name, float *w, const float *g, size_t n)
{
	double gmax = 1e-6, worst = 0;
	for (size_t i = 0; i < n; i++)
		gmax = fmax(gmax, fabs(g[i]));
	for (size_t i = 0; i < n; i += 1 + n / 25) {
		float save = w[i];
		double h = 1e-2;
		w[i] = save + (float)h;
		double up = objective(m);
		w[i] = save - (float)h;
		double dn = objective(m);
		w[i] = save;
		double fd = (up - dn) / (2 * h);
		worst = fmax(worst, fabs(fd - g[i]) / gmax);
	}
	CHECK_MSG(worst < 0.02, "%s: finite differences off by %.3g of the largest gradient %.3g",
		  name, worst, gmax);
}

static aim_model *tiny_model(void)
{
	aim_config c = {.grid_rows = ROWS, .grid_cols = COLS, .patch = 2, .channels = 2, .dim = 8,
			.depth = 3, .heads = 2, .mlp_hidden = 12, .proj_bias = 1, .mlp_bias = 1,
			.nprobe = 1, .probe_layers = {2}};
	if (V2) {
		c.norm = AIM_NORM_RMS;
		c.mlp = AIM_MLP_SWIGLU;
		c.pos = AIM_POS_LEARNED;
		c.proj_bias = c.mlp_bias = 0;
	}
	aim_model *m;
	CHECK(aim_model_create(&m, &c, NULL) == 0);
	CHECK(aim_model_init_params(m, 3) == 0);
	/* LayerNorm and bias values away from 1 / 0 */
	uint64_t s = 11;
	for (int i = 0; i < m->nparams; i++)
		if (m->info[i].ndim == 1 || m->info[i].slot == &m->p.pos_embed) {
			float *w = *m->info[i].slot;
			fill(w, m->info[i].numel, 0.3, &s);
			if (strstr(m->info[i].name, "norm") && strstr(m->info[i].name, "weight"))
				for (size_t j = 0; j < m->info[i].numel; j++)
					w[j] += 1;
		}
	return m;
}

/* Random values in every tune tensor (B and up nonzero: gradients flow). */
static void randomise(aim_tune *t, uint64_t seed)
{
	for (int i = 0; i < t->nparams; i++)
		fill(*t->info[i].slot, t->info[i].numel, 0.4, &seed);
}

static void check_tune(const aim_tune_config *c, const char *what)
{
	aim_model *m = tiny_model();
	aim_tune *t;
	CHECK(aim_tune_create(&t, c, 3, 8, 12, 8, NULL, 5) == 0);
	randomise(t, 9);
	CHECK(aim_model_set_tune(m, t, 1) == 0);
	CHECK(aim_tune_alloc_grads(t) == 0);
	gradients(m);
	int nchecked = 0;
	for (int i = 0; i < t->nparams; i++) {
		aim_param_info *p = &t->info[i];
		float *g = malloc(p->numel * sizeof(float));
		memcpy(g, *p->grad_slot, p->numel * sizeof(float));
		char name[128];
		snprintf(name, sizeof name, "%s %s", what, p->name);
		int above = strstr(p->name, "blocks.2.") != NULL; /* above the features */
		if (above) {
			double mx = 0;
			for (size_t j = 0; j < p->numel; j++)
				mx = fmax(mx, fabs(g[j]));
			CHECK_MSG(mx == 0, "%s: gradient above the features", name);
		} else {
			check_fd(m, name, *p->slot, g, p->numel);
			nchecked++;
		}
		free(g);
	}
	CHECK(nchecked > 0);
	aim_model_free(m);
}

static void check_full(void)
{
	aim_model *m = tiny_model();
	CHECK(aim_model_alloc_grads(m) == 0);
	gradients(m);
	for (int i = 0; i < m->nparams; i++) {
		aim_param_info *p = &m->info[i];
		if (strstr(p->name, "blocks.2.") || (!V2 && strstr(p->name, "post_trunk")))
			continue; /* not reached (AIM v1's features are before its post-trunk norm) */
		float *g = malloc(p->numel * sizeof(float));
		memcpy(g, *p->grad_slot, p->numel * sizeof(float));
		check_fd(m, p->name, *p->slot, g, p->numel);
		free(g);
	}
	aim_model_free(m);
}

/* Inference features of blocks {0, 1} averaged, with and without merging. */
static void features(aim_model *m, float *f)
{
	unsigned char keep[3] = {1, 1, 0};
	aim_forward_opts fo = {.keep = keep};
	CHECK(aim_model_forward(m, X, B, ROWS, COLS, &fo) == 0);
	memset(f, 0, (size_t)B * KP * 8 * sizeof(float));
	aim_model_patch_tokens_add(m, 0, 0.5f, f);
	aim_model_patch_tokens_add(m, 1, 0.5f, f);
}

static void check_merge_and_files(void)
{
	aim_tune_config c = {.kind = AIM_TUNE_LORA, .rank = 3, .alpha = 5, .targets = V2 ? 31 : 15};
	aim_model *m = tiny_model(), *plain = tiny_model();
	aim_tune *t;
	CHECK(aim_tune_create(&t, &c, 3, 8, 12, 8, NULL, 5) == 0);
	randomise(t, 21);
	char dir[] = "/tmp/aim-test-tune-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	CHECK(aim_tune_save(t, dir, "tiny", aim_trunk_hash(m)) == 0);
	CHECK(aim_model_set_tune(m, t, 1) == 0);
	size_t n = (size_t)B * KP * 8;
	float *fa = malloc(n * sizeof(float)), *fb = malloc(n * sizeof(float));
	float *f0 = malloc(n * sizeof(float));
	features(m, fa);
	features(plain, f0);
	char warn[256];
	aim_tune_kind kind;
	CHECK_MSG(aim_tune_apply(plain, dir, &kind, warn, sizeof warn) == 0, "%s", aim_errmsg());
	CHECK(kind == AIM_TUNE_LORA && warn[0] == 0);
	features(plain, fb);
	double worst = 0, scale = 0, moved = 0;
	for (size_t i = 0; i < n; i++) {
		worst = fmax(worst, fabs(fa[i] - fb[i]));
		scale = fmax(scale, fabs(fa[i]));
		moved = fmax(moved, fabs(fa[i] - f0[i]));
	}
	CHECK_MSG(worst <= 1e-5 * scale, "merged vs unmerged: %g of %g", worst, scale);
	CHECK_MSG(moved > 1e-3 * scale, "LoRA changed nothing (%g)", moved);
	/* another trunk's weights: a warning; another depth: an error naming a tensor */
	aim_model *other = tiny_model();
	*other->p.blocks[0].qkv_w += 1;
	aim_tune *t2;
	CHECK(aim_tune_load(&t2, dir, other, warn, sizeof warn) == 0);
	CHECK_MSG(strstr(warn, "other trunk weights") != NULL, "warning '%s'", warn);
	aim_tune_free(t2);
	aim_config c2 = other->cfg;
	c2.depth = 2;
	c2.probe_layers[0] = 1;
	aim_model *shallow;
	CHECK(aim_model_create(&shallow, &c2, NULL) == 0);
	CHECK(aim_model_init_params(shallow, 1) == 0);
	CHECK(aim_tune_load(&t2, dir, shallow, warn, sizeof warn) < 0);
	CHECK_MSG(strstr(aim_errmsg(), "trunk.blocks.2.") && strstr(aim_errmsg(), "2 blocks"),
		  "error '%s'", aim_errmsg());
	aim_model_free(shallow);
	aim_model_free(other);
	char path[300];
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	unlink(path);
	rmdir(dir);
	free(fa), free(fb), free(f0);
	aim_model_free(m);
	aim_model_free(plain);
}

/* ---- dump mode ------------------------------------------------------------ */

static void die(void)
{
	fprintf(stderr, "test_tune: %s\n", aim_errmsg());
	exit(1);
}

static int dump(char **argv)
{
	const char *model = argv[2], *adapter = argv[3], *headp = argv[4], *patches = argv[5];
	const char *layers = argv[6], *out = argv[8];
	int micro = atoi(argv[7]);
	aim_model *m, *merged;
	if (aim_model_load(&m, model, NULL) < 0 || aim_model_load(&merged, model, NULL) < 0)
		die();
	int full = !strcmp(adapter, "full"), none = !strcmp(adapter, "-");
	char warn[512];
	if (!full && !none) {
		aim_tune *t;
		if (aim_tune_load(&t, adapter, m, warn, sizeof warn) < 0 ||
		    aim_model_set_tune(m, t, 1) < 0)
			die();
		if (aim_tune_apply(merged, adapter, NULL, warn, sizeof warn) < 0)
			die();
	}
	if (none)
		m->frozen = 1;
	aim_stfile hf;
	aim_head h;
	if (aim_st_open(&hf, headp) < 0 || aim_head_load(&h, &hf.rec, 0, headp) < 0)
		die();
	const char *paths[1] = {patches};
	aim_reader *rd = aim_reader_open(paths, 1);
	aim_record r;
	aim_record_init(&r);
	if (!rd || aim_reader_next(rd, &r) != 1)
		die();
	aim_trunk_features tf, tfm;
	if (aim_trunk_features_init(&tf, m, layers) < 0 ||
	    aim_trunk_features_init(&tfm, merged, layers) < 0)
		die();
	/* inference features first (the trainer's forward replaces the state) */
	const float *feat;
	int64_t Bn, K;
	aim_record o;
	aim_record_init(&o);
	if (aim_trunk_features_run(&tf, &r, "patches", &feat, &Bn, &K) < 0)
		die();
	int64_t fs[3] = {Bn, K, m->cfg.dim};
	aim_record_add(&o, "features", AIM_F32, 3, fs, feat);
	if (aim_trunk_features_run(&tfm, &r, "patches", &feat, &Bn, &K) < 0)
		die();
	aim_record_add(&o, "features.merged", AIM_F32, 3, fs, feat);

	const float *x;
	aim_geometry g;
	if (aim_trunk_patches(&tf, &r, "patches", &x, &Bn, &g) < 0)
		die();
	const aim_tensor *lt = aim_record_find(&r, "label");
	int64_t *y = malloc((size_t)Bn * sizeof(int64_t));
	memcpy(y, lt->data, (size_t)Bn * sizeof(int64_t));
	aim_tune_trainer tr;
	if (aim_tune_trainer_init(&tr, m, &h, tf.layers, tf.nl, micro, 0.1, 0.75) < 0)
		die();
	/* stochastic depth (argument 9): its branch factors go into the dump
	 * for the reference to apply */
	double drop = argv[9] ? atof(argv[9]) : 0;
	if (aim_tune_trainer_set_drop_path(&tr, drop, 11) < 0)
		die();
	if (drop > 0) {
		int64_t fsz[3] = {m->cfg.depth, 2, Bn};
		float *fac = malloc((size_t)(2 * m->cfg.depth * Bn) * sizeof(float));
		aim_drop_path_factors(drop, m->cfg.depth, 11, 0, (int)Bn, fac);
		aim_record_add(&o, "drop.factors", AIM_F32, 3, fsz, fac);
		free(fac);
	}
	int C = h.cfg.classes;
	float *logits = malloc((size_t)Bn * C * sizeof(float));
	double loss;
	int64_t correct;
	if (aim_tune_trainer_gradients(&tr, x, y, (int)Bn, g.rows, g.cols, &loss, &correct,
				       logits) < 0)
		die();
	int64_t ls[2] = {Bn, C}, one[1] = {1};
	float lossf = (float)loss;
	aim_record_add(&o, "logits", AIM_F32, 2, ls, logits);
	aim_record_add(&o, "loss", AIM_F32, 1, one, &lossf);
	for (int i = 0; i < tr.ntt; i++) {
		char name[160];
		snprintf(name, sizeof name, "grad.%s", tr.tt[i].name);
		int64_t n[1] = {tr.tt[i].n};
		aim_record_add(&o, name, AIM_F32, 1, n, tr.tt[i].g);
	}
	struct { const char *name; const float *p; size_t n; } hp[] = {
		{"grad.head.cls_token", h.cls_token, (size_t)h.cfg.queries * h.cfg.dim},
		{"grad.head.k.weight", h.wk, (size_t)h.cfg.dim * h.cfg.dim},
		{"grad.head.v.weight", h.wv, (size_t)h.cfg.dim * h.cfg.dim},
		{"grad.head.linear.weight", h.wlin, (size_t)C * h.cfg.dim},
		{"grad.head.linear.bias", h.blin, (size_t)C},
	};
	for (size_t i = 0; i < sizeof hp / sizeof *hp; i++)
		if (hp[i].p) {
			int64_t n[1] = {(int64_t)hp[i].n};
			aim_record_add(&o, hp[i].name, AIM_F32, 1, n, tr.hgrad + (hp[i].p - h.params));
		}
	/* the layer-decay scales, to check the full fine-tuning bookkeeping */
	if (aim_st_write(out, &o) < 0)
		die();
	aim_tune_trainer_free(&tr);
	aim_trunk_features_free(&tf);
	aim_trunk_features_free(&tfm);
	aim_record_free(&o);
	aim_record_free(&r);
	aim_reader_close(rd);
	aim_head_free(&h);
	aim_st_close(&hf);
	aim_model_free(m);
	aim_model_free(merged);
	free(y), free(logits);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 9 || argc == 10) && !strcmp(argv[1], "dump"))
		return dump(argv);
	uint64_t s = 1;
	R = malloc((size_t)B * KP * 8 * sizeof(float));
	X = malloc((size_t)B * KP * 8 * sizeof(float));
	fill(R, (size_t)B * KP * 8, 1.0, &s);
	fill(X, (size_t)B * KP * 8, 1.0, &s);
	AT[0] = AT[1] = 1;

	for (V2 = 0; V2 < 2; V2++) {
		/* every target: AIM v1's four, AIMv2's five (fc3) */
		aim_tune_config lora = {.kind = AIM_TUNE_LORA, .rank = 2, .alpha = 3,
					.targets = V2 ? 31 : 15};
		check_tune(&lora, V2 ? "aimv2 lora" : "lora");
		aim_tune_config adp = {.kind = AIM_TUNE_ADAPTER, .adapter_dim = 3};
		check_tune(&adp, V2 ? "aimv2 adapter" : "adapter");
		aim_tune_config pr = {.kind = AIM_TUNE_PROMPT, .prompts = 2};
		check_tune(&pr, V2 ? "aimv2 prompt" : "prompt");
		aim_tune_config deep = {.kind = AIM_TUNE_PROMPT, .prompts = 3, .deep = 1};
		check_tune(&deep, V2 ? "aimv2 deep prompt" : "deep prompt");
		check_full();
		check_merge_and_files();
	}
	/* fc3 on an AIM v1 trunk (GELU MLP): refused when attached */
	V2 = 0;
	aim_model *v1 = tiny_model();
	aim_tune_config c3 = {.kind = AIM_TUNE_LORA, .rank = 2, .alpha = 2, .targets = 1u << AIM_LORA_FC3};
	aim_tune *t3;
	CHECK(aim_tune_create(&t3, &c3, 3, 8, 12, 8, NULL, 1) == 0);
	CHECK(aim_model_set_tune(v1, t3, 1) < 0);
	CHECK_MSG(strstr(aim_errmsg(), "fc3") != NULL, "error '%s'", aim_errmsg());
	aim_tune_free(t3);
	aim_model_free(v1);

	/* stochastic depth's draws: block 0 whole, block l dropped at about
	 * rate·l/(depth−1), kept branches scaled by 1/(1 − that), the same
	 * factors for a sample whichever micro-batch it is in */
	enum { DB = 4000, DL = 5 };
	float *fac = malloc(sizeof(float) * 2 * DL * DB), part[2 * DL * 7];
	aim_drop_path_factors(0.4, DL, 3, 100, DB, fac);
	for (int l = 0; l < DL; l++)
		for (int j = 0; j < 2; j++) {
			double p = 0.4 * l / (DL - 1), dropped = 0;
			for (int i = 0; i < DB; i++) {
				float f = fac[(l * 2 + j) * DB + i];
				dropped += f == 0;
				CHECK(f == 0 || f == (float)(1 / (1 - p)));
			}
			CHECK_MSG(fabs(dropped / DB - p) < 0.03, "block %d branch %d: %.3f dropped, want %.3f",
				  l, j, dropped / DB, p);
		}
	aim_drop_path_factors(0.4, DL, 3, 100 + 50, 7, part);
	for (int l = 0; l < 2 * DL; l++)
		for (int i = 0; i < 7; i++)
			CHECK(part[l * 7 + i] == fac[l * DB + 50 + i]);
	float *other = malloc(sizeof(float) * 2 * DL * DB);
	aim_drop_path_factors(0.4, DL, 4, 100, DB, other); /* another seed: other draws */
	int differ = 0;
	for (int i = 0; i < 2 * DL * DB; i++)
		differ += other[i] != fac[i];
	CHECK_MSG(differ > DB, "seeds 3 and 4 differ in %d of %d factors", differ, 2 * DL * DB);
	free(other);
	free(fac);

	unsigned bits;
	CHECK(aim_lora_parse_targets("qkv,fc2", &bits) == 0 && bits == 9);
	CHECK(aim_lora_parse_targets("fc3", &bits) == 0 && bits == 1u << AIM_LORA_FC3);
	CHECK(aim_lora_parse_targets("qkv,mlp", &bits) < 0);
	free(R), free(X);
	return check_summary("test_tune");
}
