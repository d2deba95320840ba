/* The trunk under the training masks, and its backward, against PyTorch,
 * for both families: tests/data/model/train.safetensors (AIM v1, made by
 * tests/ref/aim_ref.py) and train_v2.safetensors (AIMv2: RMSNorm, SwiGLU,
 * a learned position table, qkv bias; tests/ref/aimv2_ref.py), both made
 * by tests/ref/make_model_fixtures.py, each hold a model (non-square 3x5
 * grid, biases, head dim 12), its input patches, the per-block outputs
 * torch computed under the causal and prefix-causal masks, and torch
 * autograd's gradient of every parameter for L = Σ g ⊙ post_norm(last
 * block) under the prefix mask. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "model_load.h"
#include "safetensors.h"


static double max_abs(const float *a, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs(a[i]));
	return m;
}

static double max_diff(const float *a, const float *b, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)a[i] - b[i]));
	return m;
}

static void check_fixture(const char *fixture)
{
	const char *top = getenv("AIM_TOP");
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", top ? top : ".", fixture);
	aim_stfile f;
	if (aim_st_open(&f, path) < 0) {
		CHECK_MSG(0, "%s", aim_errmsg());
		return;
	}
	/* The model file proper: the fixture without its ref.* tensors, which
	 * a model loader refuses as belonging to no known part. */
	aim_record w;
	aim_record_init(&w);
	for (int i = 0; i < f.rec.n; i++)
		if (strncmp(f.rec.t[i].name, "ref.", 4))
			aim_record_add_ref(&w, f.rec.t[i].name, f.rec.t[i].dtype, f.rec.t[i].ndim,
					   f.rec.t[i].shape, f.rec.t[i].data);
	aim_record_set_meta(&w, "aim.config", aim_record_get_meta(&f.rec, "aim.config"));
	char model_path[] = "/tmp/test_model_train.XXXXXX";
	int fd = mkstemp(model_path);
	CHECK(fd >= 0 && aim_st_write(model_path, &w) == 0);
	aim_record_free(&w);
	aim_model *m;
	aim_load_opts lo = {0};
	int rc = aim_model_load(&m, model_path, &lo);
	unlink(model_path); /* the model keeps its mapping */
	close(fd);
	CHECK_MSG(rc == 0, "%s", aim_errmsg());
	if (rc) {
		aim_st_close(&f);
		return;
	}
	const aim_config *c = &m->cfg;
	CHECK(c->proj_bias && c->mlp_bias && c->grid_rows == 3 && c->grid_cols == 5);
	if (strstr(fixture, "_v2")) /* the family comes from the file */
		CHECK(c->norm == AIM_NORM_RMS && c->mlp == AIM_MLP_SWIGLU &&
		      c->pos == AIM_POS_LEARNED && c->qkv_bias);
	else
		CHECK(c->norm == AIM_NORM_LAYER && c->mlp == AIM_MLP_GELU && c->pos == AIM_POS_SINCOS);
	aim_tensor *pt = aim_record_find(&f.rec, "ref.patches");
	aim_tensor *pr = aim_record_find(&f.rec, "ref.prefix");
	int B = (int)pt->shape[0], K = (int)pt->shape[1], D = c->dim;
	size_t per = (size_t)K * D;
	int prefix[16];
	for (int b = 0; b < B; b++)
		prefix[b] = (int)((int64_t *)pr->data)[b];

	/* Forward under both masks, every block compared. */
	const char *kinds[] = {"causal", "prefix"};
	aim_mask_kind masks[] = {AIM_MASK_CAUSAL, AIM_MASK_PREFIX};
	CHECK(aim_model_alloc_grads(m) == 0);
	for (int k = 0; k < 2; k++) {
		aim_forward_opts o = {.mask = masks[k], .prefix = prefix, .train = 1, .post_norm = 1};
		CHECK(aim_model_forward(m, pt->data, B, 3, 5, &o) == 0);
		char name[64];
		snprintf(name, sizeof name, "ref.%s.blocks", kinds[k]);
		aim_tensor *want = aim_record_find(&f.rec, name); /* [B, depth, K, D] */
		for (int l = 0; l < c->depth; l++) {
			const float *got = aim_model_block_output(m, l);
			double err = 0, scale = 0;
			for (int b = 0; b < B; b++) {
				const float *w = (const float *)want->data + ((size_t)b * c->depth + l) * per;
				err = fmax(err, max_diff(got + (size_t)b * per, w, per));
				scale = fmax(scale, max_abs(w, per));
			}
			CHECK_MSG(err <= 1e-4 * scale, "%s mask, block %d: error %g of scale %g", kinds[k],
				  l, err, scale);
		}
	}
	/* Inference forward (no training buffers) must agree with training. */
	{
		unsigned char keep[2] = {1, 1};
		float *train_out = malloc(sizeof(float) * B * per);
		memcpy(train_out, aim_model_block_output(m, 1), sizeof(float) * B * per);
		aim_forward_opts o = {.mask = AIM_MASK_PREFIX, .prefix = prefix, .keep = keep};
		CHECK(aim_model_forward(m, pt->data, B, 3, 5, &o) == 0);
		CHECK(max_diff(aim_model_block_output(m, 1), train_out, B * per) < 1e-5);
		free(train_out);
	}

	/* Backward from dL/d(post-norm) under the prefix mask. */
	aim_forward_opts o = {.mask = AIM_MASK_PREFIX, .prefix = prefix, .train = 1, .post_norm = 1};
	CHECK(aim_model_forward(m, pt->data, B, 3, 5, &o) == 0);
	aim_model_zero_grads(m);
	aim_tensor *g = aim_record_find(&f.rec, "ref.g");
	CHECK(aim_model_backward(m, g->data, 1) == 0);
	int checked = 0;
	for (int i = 0; i < m->nparams; i++) {
		const aim_param_info *p = &m->info[i];
		char name[128];
		snprintf(name, sizeof name, "ref.grad.%s", p->name);
		aim_tensor *want = aim_record_find(&f.rec, name);
		CHECK_MSG(want != NULL, "fixture lacks %s", name);
		if (!want)
			continue;
		double scale = max_abs(want->data, p->numel);
		double err = max_diff(*p->grad_slot, want->data, p->numel);
		CHECK_MSG(err <= 1e-3 * scale + 1e-6, "gradient of %s: error %g of scale %g", p->name,
			  err, scale);
		checked++;
	}
	CHECK(checked == m->nparams);
	/* Accumulation: a second backward doubles every gradient. */
	float g0 = m->g.blocks[0].qkv_w[5];
	CHECK(aim_model_backward(m, g->data, 1) == 0);
	CHECK_NEAR(m->g.blocks[0].qkv_w[5], 2 * g0, 1e-5 * fabs(g0) + 1e-7);

	aim_model_free(m);
	aim_st_close(&f);
}

int main(void)
{
	check_fixture("tests/data/model/train.safetensors");
	check_fixture("tests/data/model/train_v2.safetensors");
	return check_summary("test_model_train");
}
