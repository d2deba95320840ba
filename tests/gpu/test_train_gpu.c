/* A whole pretraining step (train_step.c: trunk, pixel head, loss, clipped
 * AdamW) on the CUDA backend against the same step on the CPU, from the
 * same weights and images: loss, every gradient, the gradient norm, the
 * weights, head and moments after two updates, evaluation loss and
 * predictions. Then determinism on the GPU: a second GPU trainer started
 * from the same state ends bit-identical. Exits 0 all passed, 1 any
 * failure, 77 no usable CUDA device.
 *   usage: test_train_gpu [-v] [--self]   (AIM_CUDA_LIB: the library)
 * --self runs the harness without a GPU: the "device" is the CPU table
 * marked as not host memory, so train_step.c takes its device path (twin
 * model, head and moments apart from the host objects, uploads, syncs)
 * with the CPU ops: every error must then be zero. */
#include <math.h>

#include "gpu_expect.h"
#include "model.h"
#include "train_rng.h"
#include "train_step.h"


static void expect_same(const char *what, const float *a, const float *b, size_t n)
{
	checks++;
	int same = memcmp(a, b, n * sizeof(float)) == 0;
	failures += !same;
	if (!same || verbose)
		printf("%-4s %s%s\n", same ? "ok" : "FAIL", what, same ? "" : " (not bit-identical) <-");
}

static void die(const char *what)
{
	printf("FAIL %s: %s <-\n", what, aim_errmsg());
	exit(1);
}

/* A ViT-S-like trunk at a small grid, its head, and one trainer. */
static void make(aim_model **m, aim_trainer *t, const aim_config *c, const aim_geometry *g,
		 const aim_backend *be)
{
	if (aim_model_create(m, c, aim_backend_cpu()) || aim_model_init_params(*m, 5) ||
	    aim_trainer_init(t, *m, 2, 192, g, 1, 11, 4))
		die("trainer setup");
	aim_rng r;
	aim_rng_init(&r, 11, 3);
	aim_pixel_head_init_random(&t->head, &r);
	if (aim_trainer_set_backend(t, be))
		die("aim_trainer_set_backend");
}

int main(int argc, char **argv)
{
	int self = 0;
	for (int i = 1; i < argc; i++) {
		verbose |= !strcmp(argv[i], "-v");
		self |= !strcmp(argv[i], "--self");
	}
	static aim_backend as_device;
	if (self) {
		cpu = aim_backend_cpu();
		as_device = *cpu;
		as_device.name = "cpu-as-device";
		as_device.host_memory = 0;
		gpu = &as_device;
	} else {
		int rc = gpu_open("test_train_gpu");
		if (rc)
			return rc;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	aim_config c;
	memset(&c, 0, sizeof c);
	c.grid_rows = c.grid_cols = 8;
	c.patch = 4;
	c.channels = 3;
	c.dim = 384;
	c.depth = 3;
	c.heads = 6;
	c.mlp_hidden = 4 * 384;
	c.proj_bias = c.mlp_bias = 1;
	aim_geometry g;
	memset(&g, 0, sizeof g);
	g.patch = 4;
	g.rows = g.cols = 8;
	g.channels = 3;
	g.K = 64;
	g.P = 48;
	aim_model *mc, *mg, *mg2;
	aim_trainer tc, tg, tg2;
	make(&mc, &tc, &c, &g, cpu);
	make(&mg, &tg, &c, &g, gpu);
	make(&mg2, &tg2, &c, &g, gpu);
	const int B = 10; /* micro-batches of 4: 4 + 4 + 2 */
	float *x = rand_host((size_t)B * g.K * g.P, 2);
	uint64_t gidx[10];
	for (int i = 0; i < B; i++)
		gidx[i] = 3 * (uint64_t)i + 1;
	for (long step = 0; step < 2; step++) {
		double lc, lg, l2, nc, ng, n2;
		if (aim_trainer_gradients(&tc, x, gidx, B, &lc) ||
		    aim_trainer_gradients(&tg, x, gidx, B, &lg) ||
		    aim_trainer_gradients(&tg2, x, gidx, B, &l2))
			die("aim_trainer_gradients");
		float a = (float)lg, b = (float)lc;
		char what[96];
		snprintf(what, sizeof what, "step %ld loss (%.6f vs %.6f)", step, lg, lc);
		expect(what, &a, &b, 1, 1e-5);
		snprintf(what, sizeof what, "step %ld trunk gradients", step);
		expect_dev(what, tg.dev->grad_arena, mc->grad_arena, mc->arena_floats, 2e-4);
		snprintf(what, sizeof what, "step %ld head gradients", step);
		expect_dev(what, tg.dhead_grads, tc.head.grads, (size_t)tc.head.nparams, 2e-4);
		aim_trainer_update(&tc, 1e-5, 0.05, step, &nc);
		aim_trainer_update(&tg, 1e-5, 0.05, step, &ng);
		aim_trainer_update(&tg2, 1e-5, 0.05, step, &n2);
		a = (float)ng, b = (float)nc;
		snprintf(what, sizeof what, "step %ld gradient norm", step);
		expect(what, &a, &b, 1, 1e-5);
		checks++;
		if (lg != l2 || ng != n2) {
			failures++;
			printf("FAIL step %ld: a second GPU run gives another loss or norm <-\n", step);
		}
	}
	aim_trainer_sync_host(&tg);
	aim_trainer_sync_host(&tg2);
	expect("trunk after 2 updates", mg->arena, mc->arena, mc->arena_floats, 2e-4);
	expect("head after 2 updates", tg.head.params, tc.head.params, (size_t)tc.head.nparams, 2e-4);
	expect("first moments", tg.optim.m, tc.optim.m, (size_t)tc.optim.total, 2e-4);
	expect("second moments", tg.optim.v, tc.optim.v, (size_t)tc.optim.total, 2e-4);
	expect_same("GPU twice: trunk bit-identical", mg->arena, mg2->arena, mc->arena_floats);
	expect_same("GPU twice: head bit-identical", tg.head.params, tg2.head.params,
		    (size_t)tc.head.nparams);
	expect_same("GPU twice: moments bit-identical", tg.optim.v, tg2.optim.v,
		    (size_t)tc.optim.total);
	double vc, vg;
	if (aim_trainer_eval(&tc, x, B, &vc) || aim_trainer_eval(&tg, x, B, &vg))
		die("aim_trainer_eval");
	float a = (float)vg, b = (float)vc;
	expect("evaluation loss", &a, &b, 1, 1e-5);
	float *pc = xmalloc(sizeof(float) * B * g.K * g.P), *pg = xmalloc(sizeof(float) * B * g.K * g.P);
	unsigned char *given = xmalloc((size_t)B * g.K);
	if (aim_trainer_predict(&tc, x, B, 20, pc, given) ||
	    aim_trainer_predict(&tg, x, B, 20, pg, given))
		die("aim_trainer_predict");
	free(given);
	expect("predictions", pg, pc, (size_t)B * g.K * g.P, 2e-4);
	aim_trainer_free(&tc);
	aim_trainer_free(&tg);
	aim_trainer_free(&tg2);
	aim_model_free(mc);
	aim_model_free(mg);
	aim_model_free(mg2);
	free(x);
	free(pc);
	free(pg);
	printf("test_train_gpu: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
