/* aim_model_convert: the tiny fixture's backbone.pth + head.pth (config.json
 * beside them) written as one safetensors file loads back with exactly the
 * parameters of model.safetensors, its aim.config and its head; F16 output
 * is the rounded values; an architecture-less input without --arch fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "model_load.h"
#include "tensor.h"

int main(void)
{
	const char *top = getenv("AIM_TOP") ? getenv("AIM_TOP") : ".";
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char dir[1024], bb[1100], hd[1100], st[1100], out[1100], out16[1100];
	snprintf(dir, sizeof dir, "%.900s/tests/data/model/tiny", top);
	snprintf(bb, sizeof bb, "%s/backbone.pth", dir);
	snprintf(hd, sizeof hd, "%s/head.pth", dir);
	snprintf(st, sizeof st, "%s/model.safetensors", dir);
	snprintf(out, sizeof out, "%.900s/aim-convert-%d.safetensors", tmp, (int)getpid());
	snprintf(out16, sizeof out16, "%.900s/aim-convert16-%d.safetensors", tmp, (int)getpid());

	int rc = aim_model_convert(bb, hd, out, NULL, AIM_F32);
	CHECK_MSG(rc == 0, "%s", aim_errmsg());
	rc = aim_model_convert(bb, hd, out16, NULL, AIM_F16);
	CHECK_MSG(rc == 0, "%s", aim_errmsg());

	aim_model *a = NULL, *b = NULL, *c = NULL;
	aim_load_opts lo = {0};
	CHECK(aim_model_load(&a, st, &lo) == 0);
	rc = aim_model_load(&b, out, &lo);
	CHECK_MSG(rc == 0, "%s", aim_errmsg());
	rc = aim_model_load(&c, out16, &lo);
	CHECK_MSG(rc == 0, "%s", aim_errmsg());
	if (a && b && c) {
		CHECK(a->nparams == b->nparams && b->nparams == c->nparams);
		for (int i = 0; i < a->nparams; i++) {
			const aim_param_info *p = &a->info[i];
			const float *x = *p->slot, *y = *b->info[i].slot, *z = *c->info[i].slot;
			CHECK_MSG(memcmp(x, y, p->numel * sizeof(float)) == 0, "%s differs", p->name);
			int ok = 1;
			for (size_t j = 0; j < p->numel && ok; j++)
				ok = z[j] == aim_f16_to_f32(aim_f32_to_f16(x[j]));
			CHECK_MSG(ok, "%s: F16 copy is not the rounded value", p->name);
		}
		CHECK(b->has_head && b->head.n == a->head.n);
		for (int i = 0; i < a->head.n; i++) {
			aim_tensor *t = aim_record_find(&b->head, a->head.t[i].name);
			CHECK_MSG(t && t->nbytes == a->head.t[i].nbytes &&
				  memcmp(t->data, a->head.t[i].data, t->nbytes) == 0, "head %s",
				  a->head.t[i].name);
		}
		CHECK(b->cfg.dim == 32 && b->cfg.depth == 2 && b->cfg.heads == 2 &&
		      b->cfg.grid_rows == 3 && b->cfg.grid_cols == 5 && b->cfg.nprobe == 2);
	}
	aim_model_free(a);
	aim_model_free(b);
	aim_model_free(c);
	unlink(out);
	unlink(out16);

	/* No architecture anywhere: an error that asks for --arch. */
	char lone[1100], lonebb[1200], cmd[4096];
	snprintf(lone, sizeof lone, "%.900s/aim-convert-lone-%d", tmp, (int)getpid());
	snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/'", lone, bb, lone);
	CHECK(system(cmd) == 0);
	snprintf(lonebb, sizeof lonebb, "%s/backbone.pth", lone);
	CHECK(aim_model_convert(lonebb, NULL, out, NULL, AIM_F32) < 0);
	CHECK_MSG(strstr(aim_errmsg(), "--arch") != NULL, "%s", aim_errmsg());
	CHECK(access(out, F_OK) != 0);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", lone);
	CHECK(system(cmd) == 0);
	return check_summary("test_model_convert");
}
