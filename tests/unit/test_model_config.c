/* Architecture sources: the published presets (aim-v1 models.py and
 * constants.py: dims, depths, heads, LAYERS_BEST), Hugging Face config.json
 * keys, the aim.config round trip, and clear errors for bad configs. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "err.h"
#include "model.h"

int main(void)
{
	static const struct { const char *name; int dim, depth, heads, best0; } pub[] = {
		{"aim-600M", 1536, 24, 12, 14}, {"aim-1B", 2048, 24, 16, 12},
		{"aim-3B", 3072, 24, 24, 12}, {"aim-7B", 4096, 32, 32, 14},
	};
	for (int i = 0; i < 4; i++) {
		aim_config c;
		CHECK(aim_config_preset(&c, pub[i].name) == 0);
		CHECK(c.dim == pub[i].dim && c.depth == pub[i].depth && c.heads == pub[i].heads);
		CHECK(c.patch == 14 && c.channels == 3 && c.grid_rows == 16 && c.grid_cols == 16);
		CHECK(c.mlp_hidden == 4 * c.dim && !c.proj_bias && !c.mlp_bias);
		CHECK(c.nprobe == 6 && c.probe_layers[0] == c.depth - 6 && c.probe_layers[5] == c.depth - 1);
		int best[8];
		CHECK(aim_config_best_layers(&c, best) == 6);
		CHECK(best[0] == pub[i].best0 && best[5] == pub[i].best0 + 5);
		CHECK(aim_config_check(&c) == 0);
	}
	aim_config c;
	CHECK(aim_config_preset(&c, "aim-2B") < 0);

	/* The Hugging Face config.json of apple/aim-600M has these keys. */
	const char *hf = "{\"img_size\": 224, \"patch_size\": 14, \"embed_dim\": 1536, "
			 "\"num_blocks\": 24, \"num_heads\": 12, \"num_channels\": 3, "
			 "\"probe_layers\": 6, \"num_classes\": 1000}";
	CHECK(aim_config_from_json(&c, hf, "config.json") == 0);
	CHECK(c.dim == 1536 && c.depth == 24 && c.nprobe == 6 && c.probe_layers[0] == 18);
	const char *list = "{\"img_size\": [28, 42], \"patch_size\": 7, \"embed_dim\": 64, "
			   "\"num_blocks\": 4, \"num_heads\": 2, \"num_channels\": 1, "
			   "\"probe_layers\": [1, 3], \"mlp_ratio\": 2, \"use_bias\": true}";
	CHECK(aim_config_from_json(&c, list, "x") == 0);
	CHECK(c.grid_rows == 4 && c.grid_cols == 6 && c.channels == 1 && c.mlp_hidden == 128);
	CHECK(c.nprobe == 2 && c.probe_layers[1] == 3 && c.proj_bias && c.mlp_bias);
	/* round trip through aim.config */
	char *j = aim_config_to_json(&c);
	aim_config d;
	CHECK(aim_config_from_json(&d, j, "round trip") == 0);
	CHECK(memcmp(&c, &d, sizeof c) == 0);
	free(j);
	/* errors name the field */
	CHECK(aim_config_from_json(&c, "{\"img_size\": 224, \"patch_size\": 14}", "f.json") < 0);
	CHECK_MSG(strstr(aim_errmsg(), "embed_dim") != NULL, "%s", aim_errmsg());
	CHECK(aim_config_from_json(&c, "{\"img_size\": 224, \"patch_size\": 14, \"embed_dim\": 30, "
				       "\"num_blocks\": 2, \"num_heads\": 3}", "f.json") < 0);
	CHECK_MSG(strstr(aim_errmsg(), "multiple of 4") != NULL, "%s", aim_errmsg());
	CHECK(aim_config_from_json(&c, "{\"img_size\": 224, \"patch_size\": 14, \"embed_dim\": 64, "
				       "\"num_blocks\": 2, \"num_heads\": 3}", "f.json") < 0);
	CHECK_MSG(strstr(aim_errmsg(), "divisible") != NULL, "%s", aim_errmsg());
	CHECK(aim_config_from_json(&c, "{\"img_size\": 224, \"patch_size\": 14, \"embed_dim\": 64, "
				       "\"num_blocks\": 2, \"num_heads\": 2, \"probe_layers\": [5]}",
				   "f.json") < 0);
	CHECK_MSG(strstr(aim_errmsg(), "probe_layers") != NULL, "%s", aim_errmsg());
	CHECK(aim_config_from_json(&c, "[1, 2]", "f.json") < 0);
	/* AIMv2: the published shapes (ml-aim aim-v2 models.py), head dim 128 */
	static const struct { const char *name; int dim, heads, hidden, grid; } v2[] = {
		{"aimv2-large-patch14-224", 1024, 8, 2816, 16},
		{"aimv2-huge-patch14-336", 1536, 12, 4096, 24},
		{"aimv2-1B-patch14-448", 2048, 16, 5632, 32},
		{"AIMV2_3B_PATCH14_224", 3072, 24, 8192, 16},
	};
	for (int i = 0; i < 4; i++) {
		CHECK(aim_config_preset(&c, v2[i].name) == 0);
		CHECK(c.dim == v2[i].dim && c.heads == v2[i].heads && c.mlp_hidden == v2[i].hidden);
		CHECK(c.depth == 24 && c.dim / c.heads == 128 && c.grid_rows == v2[i].grid);
		CHECK(c.norm == AIM_NORM_RMS && c.mlp == AIM_MLP_SWIGLU && c.pos == AIM_POS_LEARNED);
		CHECK(c.nprobe == 1 && c.probe_layers[0] == 23 && aim_config_eps(&c) == 1e-5f);
		int best[8];
		CHECK(aim_config_best_layers(&c, best) < 0); /* v1's LAYERS_BEST are not v2's */
	}
	CHECK(aim_config_preset(&c, "aimv2-large-patch14-native") == 0 && c.pos == AIM_POS_SINCOS);
	CHECK(aim_config_preset(&c, "aimv2-huge-patch14-native") < 0);
	CHECK(!strcmp(aim_config_family(&c), "aimv2"));
	/* the Hugging Face config.json of apple/aimv2-large-patch14-224 */
	const char *v2hf = "{\"model_type\": \"aimv2\", \"hidden_size\": 1024, \"image_size\": 224, "
			   "\"intermediate_size\": 2816, \"num_attention_heads\": 8, "
			   "\"num_channels\": 3, \"num_hidden_layers\": 24, \"patch_size\": 14, "
			   "\"qkv_bias\": false, \"rms_norm_eps\": 1e-05, \"use_bias\": false}";
	aim_config e;
	CHECK(aim_config_from_json(&c, v2hf, "config.json") == 0);
	CHECK(aim_config_preset(&e, "aimv2-large-patch14-224") == 0);
	CHECK(c.dim == e.dim && c.depth == e.depth && c.heads == e.heads &&
	      c.mlp_hidden == e.mlp_hidden && c.grid_rows == 16 && c.norm == AIM_NORM_RMS &&
	      c.mlp == AIM_MLP_SWIGLU && c.norm_eps == 1e-5f && !c.qkv_bias);
	CHECK(aim_config_from_json(&c, "{\"model_type\": \"aimv2_vision_model\", "
				       "\"hidden_size\": 64, \"intermediate_size\": 96, "
				       "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, "
				       "\"patch_size\": 14, \"mlp_bias\": true}", "config.json") == 0);
	CHECK(c.grid_rows == 16 && c.mlp_bias && c.proj_bias); /* image_size defaults to 224 */
	CHECK(aim_config_from_json(&c, "{\"architecture\": \"aimv2_huge_patch14_448.apple_pt\"}",
				   "config.json") == 0);
	CHECK(c.dim == 1536 && c.grid_rows == 32 && c.mlp == AIM_MLP_SWIGLU);
	CHECK(aim_config_from_json(&c, "{\"architecture\": \"vit_base_patch16_224\"}", "c.json") < 0);
	CHECK_MSG(strstr(aim_errmsg(), "vit_base_patch16_224") != NULL, "%s", aim_errmsg());
	/* the family round-trips through aim.config */
	CHECK(aim_config_preset(&c, "aimv2-1B-patch14-336") == 0);
	c.qkv_bias = 1;
	j = aim_config_to_json(&c);
	CHECK(aim_config_from_json(&d, j, "round trip") == 0);
	CHECK(memcmp(&c, &d, sizeof c) == 0);
	free(j);
	/* FLOPs of ViT-S/14 at 224 px (256 tokens): about 6.1 G multiply-adds,
	 * 12.2 GFLOP per image forward (FACTS.md: 9.2 images/s = 112 GFLOP/s) */
	aim_config s = {.grid_rows = 16, .grid_cols = 16, .patch = 14, .channels = 3, .dim = 384,
			.depth = 12, .heads = 6, .mlp_hidden = 1536};
	double f = aim_model_flops(&s, 16, 16);
	CHECK_MSG(f > 11.8e9 && f < 12.6e9, "%g", f);
	return check_summary("test_model_config");
}
