/* AIMv2 checkpoints in the transformers and timm layouts, renamed to the
 * ml-aim names (model_layouts.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model_layouts.h"

aim_layout aim_layout_detect(const aim_record *r)
{
	if (aim_record_find(r, "embeddings.patch_embed.weight"))
		return AIM_LAYOUT_TRANSFORMERS;
	if (aim_record_find(r, "patch_embed.proj.weight"))
		return AIM_LAYOUT_TIMM;
	return AIM_LAYOUT_MLAIM;
}

const char *aim_layout_name(aim_layout l)
{
	return l == AIM_LAYOUT_TRANSFORMERS ? "transformers" : l == AIM_LAYOUT_TIMM ? "timm" : "ml-aim";
}

typedef struct {
	const char *from, *to;
} rename_rule;

/* Names outside the blocks. */
static const rename_rule hf_top[] = {
	{"embeddings.patch_embed.weight", "preprocessor.patchifier.proj.weight"},
	{"embeddings.patch_embed.bias", "preprocessor.patchifier.proj.bias"},
	{"embeddings.rms_norm.weight", "preprocessor.patchifier.norm.weight"},
	{"embeddings.position_embedding.weight", "preprocessor.pos_embed"},
	{"rms_norm.weight", "trunk.post_trunk_norm.weight"},
	{NULL, NULL},
};
static const rename_rule timm_top[] = {
	{"patch_embed.proj.weight", "preprocessor.patchifier.proj.weight"},
	{"patch_embed.proj.bias", "preprocessor.patchifier.proj.bias"},
	{"patch_embed.norm.weight", "preprocessor.patchifier.norm.weight"},
	{"pos_embed", "preprocessor.pos_embed"},
	{"norm.weight", "trunk.post_trunk_norm.weight"},
	{NULL, NULL},
};
/* Names inside block i, after the block's prefix; "qkv:N" marks part N of
 * the fused qkv projection. */
static const rename_rule hf_block[] = {
	{"attention.q_proj.weight", "qkv:0"}, {"attention.k_proj.weight", "qkv:1"},
	{"attention.v_proj.weight", "qkv:2"}, {"attention.q_proj.bias", "qkv:0"},
	{"attention.k_proj.bias", "qkv:1"}, {"attention.v_proj.bias", "qkv:2"},
	{"attention.out_proj.weight", "attn.proj.weight"},
	{"attention.out_proj.bias", "attn.proj.bias"},
	{"ffn.gate_proj.weight", "mlp.fc1.weight"}, {"ffn.gate_proj.bias", "mlp.fc1.bias"},
	{"ffn.up_proj.weight", "mlp.fc3.weight"}, {"ffn.up_proj.bias", "mlp.fc3.bias"},
	{"ffn.down_proj.weight", "mlp.fc2.weight"}, {"ffn.down_proj.bias", "mlp.fc2.bias"},
	{"rms_norm1.weight", "norm_1.weight"}, {"rms_norm2.weight", "norm_2.weight"},
	{NULL, NULL},
};
static const rename_rule timm_block[] = {
	{"norm1.weight", "norm_1.weight"}, {"norm2.weight", "norm_2.weight"},
	{"attn.qkv.weight", "attn.qkv.weight"}, {"attn.qkv.bias", "attn.qkv.bias"},
	{"attn.proj.weight", "attn.proj.weight"}, {"attn.proj.bias", "attn.proj.bias"},
	{"mlp.fc1_g.weight", "mlp.fc1.weight"}, {"mlp.fc1_g.bias", "mlp.fc1.bias"},
	{"mlp.fc1_x.weight", "mlp.fc3.weight"}, {"mlp.fc1_x.bias", "mlp.fc3.bias"},
	{"mlp.fc2.weight", "mlp.fc2.weight"}, {"mlp.fc2.bias", "mlp.fc2.bias"},
	{NULL, NULL},
};

static const char *lookup(const rename_rule *r, const char *name)
{
	for (; r->from; r++)
		if (strcmp(r->from, name) == 0)
			return r->to;
	return NULL;
}

/* name = prefix + i + "." + rest ? */
static int block_index(const char *name, const char *prefix, int *i, const char **rest)
{
	size_t n = strlen(prefix);
	if (strncmp(name, prefix, n) != 0)
		return 0;
	const char *p = name + n;
	char *end;
	long v = strtol(p, &end, 10);
	if (end == p || *end != '.' || v < 0 || v > 100000)
		return 0;
	*i = (int)v;
	*rest = end + 1;
	return 1;
}

/* The q, k and v parts of one block's weight or bias, fused in that order
 * along the first dimension (as the ml-aim qkv Linear holds them). */
static int fuse_qkv(const aim_record *in, aim_record *out, const char *qname, const char *path)
{
	char names[3][160];
	const aim_tensor *t[3];
	const char *part[3] = {"q_proj", "k_proj", "v_proj"};
	const char *at = strstr(qname, "q_proj");
	for (int k = 0; k < 3; k++) {
		snprintf(names[k], sizeof names[k], "%.*s%s%s", (int)(at - qname), qname, part[k],
			 at + 6);
		t[k] = aim_record_find(in, names[k]);
		if (!t[k])
			return aim_error("%s: missing tensor %s (the other parts of the attention's "
					 "q/k/v projections are there)", path, names[k]);
	}
	for (int k = 1; k < 3; k++) {
		int same = t[k]->dtype == t[0]->dtype && t[k]->ndim == t[0]->ndim;
		for (int d = 0; same && d < t[0]->ndim; d++)
			same = t[k]->shape[d] == t[0]->shape[d];
		if (!same || t[0]->ndim < 1 || t[0]->ndim > 2)
			return aim_error("%s: tensor %s does not match %s in dtype and shape", path,
					 names[k], names[0]);
	}
	int bias = t[0]->ndim == 1;
	int i;
	const char *rest;
	block_index(qname, "encoder.layers.", &i, &rest);
	char name[96];
	snprintf(name, sizeof name, "trunk.blocks.%d.attn.qkv.%s", i, bias ? "bias" : "weight");
	int64_t shape[2] = {3 * t[0]->shape[0], bias ? 0 : t[0]->shape[1]};
	aim_tensor *f = aim_record_add(out, name, t[0]->dtype, t[0]->ndim, shape, NULL);
	if (!f)
		return AIM_ERR;
	size_t part_bytes = t[0]->nbytes;
	for (int k = 0; k < 3; k++)
		memcpy((char *)f->data + k * part_bytes, t[k]->data, part_bytes);
	return AIM_OK;
}

int aim_layout_to_mlaim(const aim_record *in, aim_layout l, aim_record *out, const char *path)
{
	const rename_rule *top = l == AIM_LAYOUT_TIMM ? timm_top : hf_top;
	const rename_rule *blk = l == AIM_LAYOUT_TIMM ? timm_block : hf_block;
	const char *bprefix = l == AIM_LAYOUT_TIMM ? "blocks." : "encoder.layers.";
	for (int j = 0; j < in->n; j++) {
		const aim_tensor *t = &in->t[j];
		const char *to = lookup(top, t->name), *rest;
		char name[128];
		int i;
		if (to) {
			snprintf(name, sizeof name, "%s", to);
		} else if (block_index(t->name, bprefix, &i, &rest) && (to = lookup(blk, rest))) {
			if (strncmp(to, "qkv:", 4) == 0) {
				/* fused once, at the q part */
				if (to[4] == '0' && fuse_qkv(in, out, t->name, path) < 0)
					return AIM_ERR;
				if (to[4] != '0') {
					const char *at = strstr(t->name, to[4] == '1' ? "k_proj" : "v_proj");
					snprintf(name, sizeof name, "%.*sq_proj%s", (int)(at - t->name),
						 t->name, at + 6);
					if (!aim_record_find(in, name))
						return aim_error("%s: missing tensor %s (the other parts "
								 "of the attention's q/k/v projections "
								 "are there)", path, name);
				}
				continue;
			}
			snprintf(name, sizeof name, "trunk.blocks.%d.%s", i, to);
		} else {
			return aim_error("%s: tensor %s is not part of an AIMv2 vision trunk in the %s "
					 "layout", path, t->name, aim_layout_name(l));
		}
		/* transformers keeps the position table as an Embedding [N, D] */
		int64_t shape[AIM_MAX_DIMS];
		int ndim = t->ndim;
		memcpy(shape, t->shape, sizeof shape);
		if (strcmp(name, "preprocessor.pos_embed") == 0 && ndim == 2) {
			shape[2] = shape[1];
			shape[1] = shape[0];
			shape[0] = 1;
			ndim = 3;
		}
		if (aim_record_find(out, name))
			return aim_error("%s: tensor %s given twice", path, name);
		if (!aim_record_add_ref(out, name, t->dtype, ndim, shape, t->data))
			return AIM_ERR;
	}
	return AIM_OK;
}

void aim_layout_file_name(aim_layout l, const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s", name);
	if (l == AIM_LAYOUT_MLAIM)
		return;
	const rename_rule *top = l == AIM_LAYOUT_TIMM ? timm_top : hf_top;
	const rename_rule *blk = l == AIM_LAYOUT_TIMM ? timm_block : hf_block;
	for (const rename_rule *r = top; r->from; r++)
		if (strcmp(r->to, name) == 0) {
			snprintf(buf, n, "%s", r->from);
			return;
		}
	int i;
	const char *rest;
	if (!block_index(name, "trunk.blocks.", &i, &rest))
		return;
	const char *bprefix = l == AIM_LAYOUT_TIMM ? "blocks." : "encoder.layers.";
	for (const rename_rule *r = blk; r->from; r++) {
		int qkv = strcmp(r->to, "qkv:0") == 0 && strncmp(rest, "attn.qkv.", 9) == 0 &&
			  strcmp(strrchr(r->from, '.'), strrchr(rest, '.')) == 0;
		if (strcmp(r->to, rest) == 0 || qkv) {
			snprintf(buf, n, "%s%d.%s", bprefix, i, r->from);
			return;
		}
	}
}
