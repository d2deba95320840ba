/* Patches geometry: what a record must declare, what a model supplies, and
 * the errors a user sees. Expected values are worked out by hand here. */
#include <string.h>

#include "check.h"
#include "err.h"
#include "patches.h"

/* A record of B samples of a grid rows x cols of C-channel p x p patches. */
static void make(aim_record *r, aim_dtype dt, int B, int K, int P)
{
	aim_record_init(r);
	int64_t shape[3] = {B, K, P};
	aim_record_add(r, "patches", dt, 3, shape, NULL);
}

static int has(const char *needle)
{
	return strstr(aim_errmsg(), needle) != NULL;
}

int main(void)
{
	aim_record r;
	aim_geometry g;
	aim_config model;
	CHECK(aim_config_preset(&model, "aim-600M") == 0); /* patch 14, 16x16 grid, 3 channels */

	/* Complete metadata, no model: everything from the stream. */
	make(&r, AIM_U8, 2, 6, 3 * 4 * 4);
	aim_record_set_meta(&r, "aim.patch", "4");
	aim_record_set_meta(&r, "aim.channels", "3");
	aim_record_set_meta(&r, "aim.grid", "[2, 3]");
	aim_record_set_meta(&r, "aim.mean", "[0.5, 0.25, 0]");
	aim_record_set_meta(&r, "aim.std", "[0.5, 0.25, 1]");
	CHECK(aim_patches_geometry(&g, &r, NULL, "s") == 0);
	CHECK(g.patch == 4 && g.channels == 3 && g.rows == 2 && g.cols == 3 && g.K == 6 &&
	      g.P == 48);
	CHECK(g.mean[1] == 0.25f && g.std[2] == 1.0f);

	/* U8 normalisation: 255 in channel 0 -> (1 - 0.5)/0.5 = 1; 0 in
	 * channel 1 -> -1; 51 in channel 2 -> 0.2 (as float32 division gives). */
	uint8_t *u = aim_record_find(&r, "patches")->data;
	u[288 + 0] = 255;  /* sample 1 (of 6 x 48 values), patch 0, channel 0 */
	u[288 + 16] = 0;  /* channel 1 */
	u[288 + 32] = 51; /* channel 2 */
	float x[6 * 48];
	aim_patches_to_f32(x, aim_record_find(&r, "patches"), 1, &g);
	CHECK(x[0] == 1.0f && x[16] == -1.0f && x[32] == 51.0f / 255.0f);

	/* Without a model every key is required. */
	aim_record_set_meta(&r, "aim.grid", "[3, 2]");
	CHECK(aim_patches_geometry(&g, &r, NULL, "s") == 0 && g.rows == 3);
	aim_record_set_meta(&r, "aim.grid", "[4, 2]");
	CHECK(aim_patches_geometry(&g, &r, NULL, "s") < 0 && has("s: a 4x2 grid does not hold"));
	aim_record_set_meta(&r, "aim.grid", "[2, \"x\"]");
	CHECK(aim_patches_geometry(&g, &r, NULL, "s") < 0 && has("bad aim.grid"));
	aim_record_set_meta(&r, "aim.grid", "[2, 3]");
	aim_record_set_meta(&r, "aim.patch", "5");
	CHECK(aim_patches_geometry(&g, &r, NULL, "s") < 0 && has("patch vectors of 48 values"));
	aim_record_set_meta(&r, "aim.patch", "-4");
	CHECK(aim_patches_geometry(&g, &r, NULL, "s") < 0 && has("not a positive integer"));
	aim_record_set_meta(&r, "aim.patch", "4");
	aim_record_set_meta(&r, "aim.std", "[0.5, 0, 1]");
	CHECK(aim_patches_geometry(&g, &r, NULL, "s") < 0 && has("non-positive"));
	aim_record_set_meta(&r, "aim.std", "[0.5, 1]");
	CHECK(aim_patches_geometry(&g, &r, NULL, "s") < 0 && has("aim.std"));
	aim_record_free(&r);

	make(&r, AIM_F32, 1, 4, 48);
	aim_record_set_meta(&r, "aim.patch", "4");
	aim_record_set_meta(&r, "aim.channels", "3");
	CHECK(aim_patches_geometry(&g, &r, NULL, "s") < 0 && has("aim.grid is missing"));
	aim_record_set_meta(&r, "aim.grid", "[2, 2]");
	CHECK(aim_patches_geometry(&g, &r, NULL, "s") == 0 && g.std[0] == 1.0f); /* F32: no mean/std */
	aim_record_free(&r);

	/* With a model, absent keys come from it; present ones must agree. */
	make(&r, AIM_F16, 1, 256, 3 * 14 * 14);
	CHECK(aim_patches_geometry(&g, &r, &model, "s") == 0 && g.rows == 16 && g.cols == 16);
	aim_record_set_meta(&r, "aim.grid", "[8, 32]");
	CHECK(aim_patches_geometry(&g, &r, &model, "s") == 0 && g.rows == 8 && g.cols == 32);
	aim_record_set_meta(&r, "aim.patch", "16");
	CHECK(aim_patches_geometry(&g, &r, &model, "s") < 0 &&
	      has("re-run aim-patchify with --patch 14"));
	aim_record_set_meta(&r, "aim.patch", "14");
	aim_record_set_meta(&r, "aim.channels", "1");
	CHECK(aim_patches_geometry(&g, &r, &model, "s") < 0 && has("--channels 3"));
	aim_record_free(&r);

	make(&r, AIM_F32, 1, 100, 3 * 14 * 14); /* no grid: the model's 16x16 does not hold 100 */
	CHECK(aim_patches_geometry(&g, &r, &model, "s") < 0 && has("the model's grid assumed"));
	aim_record_free(&r);

	make(&r, AIM_I32, 1, 256, 3 * 14 * 14);
	CHECK(aim_patches_geometry(&g, &r, &model, "s") < 0 && has("dtype I32"));
	aim_record_free(&r);

	aim_record_init(&r);
	CHECK(aim_patches_geometry(&g, &r, &model, "s") < 0 && has("no \"patches\" tensor"));
	aim_record_free(&r);
	return check_summary("test_patches");
}
