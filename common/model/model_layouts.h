/* The tensor names of AIMv2 checkpoints in other layouts, mapped onto the
 * ml-aim names the model uses (model.c's parameter table):
 *
 *   transformers (Aimv2VisionModel, model_type "aimv2_vision_model"):
 *     embeddings.patch_embed.*          -> preprocessor.patchifier.proj.*
 *     embeddings.rms_norm.weight        -> preprocessor.patchifier.norm.weight
 *     embeddings.position_embedding.weight [N, D] -> preprocessor.pos_embed [1, N, D]
 *     encoder.layers.i.attention.{q,k,v}_proj.*   -> trunk.blocks.i.attn.qkv.* (fused, q k v)
 *     encoder.layers.i.attention.out_proj.*       -> trunk.blocks.i.attn.proj.*
 *     encoder.layers.i.ffn.{gate,up,down}_proj.*  -> trunk.blocks.i.mlp.{fc1,fc3,fc2}.*
 *     encoder.layers.i.rms_norm{1,2}.weight       -> trunk.blocks.i.norm_{1,2}.weight
 *     rms_norm.weight                   -> trunk.post_trunk_norm.weight
 *   timm (vision_transformer.py's aimv2_* models):
 *     patch_embed.proj.*, patch_embed.norm.weight, pos_embed,
 *     blocks.i.{norm1,norm2,attn.qkv,attn.proj,mlp.fc1_g,mlp.fc1_x,mlp.fc2}.*,
 *     norm.weight                       -> the same ml-aim names (fc1_g = fc1, fc1_x = fc3)
 * A layout is recognised by its patch-embedding tensor's name. */
#ifndef AIM_MODEL_LAYOUTS_H
#define AIM_MODEL_LAYOUTS_H

#include "record.h"

typedef enum { AIM_LAYOUT_MLAIM = 0, AIM_LAYOUT_TRANSFORMERS, AIM_LAYOUT_TIMM } aim_layout;

/* Which layout the tensors of r are in. */
aim_layout aim_layout_detect(const aim_record *r);
const char *aim_layout_name(aim_layout l);

/* out (initialised, empty) := in's tensors under the ml-aim names: most
 * point into in's data (in must outlive out), the fused qkv tensors are
 * owned by out. A tensor the layout does not know, or a q/k/v part
 * missing or unlike the others, is an error naming it (path: for
 * messages). */
int aim_layout_to_mlaim(const aim_record *in, aim_layout l, aim_record *out, const char *path);

/* The name a layout gives the ml-aim tensor `name` (for messages; the fused
 * qkv is named by its q part). */
void aim_layout_file_name(aim_layout l, const char *name, char *buf, size_t n);

#endif
