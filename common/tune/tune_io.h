/* Adapter directories: the files an adaptation of a trunk (model_tune.h)
 * is kept in, and applying one to a loaded model.
 *
 * Every kind is a directory holding adapter_config.json and
 * adapter_model.safetensors (F32 tensors).
 *
 * LoRA, in the Hugging Face peft layout (what PeftModel.save_pretrained
 * writes and from_pretrained reads):
 *   adapter_config.json: "peft_type": "LORA", "r", "lora_alpha",
 *     "target_modules" (a list of module names or suffixes, or one regular
 *     expression), "bias": "none", "use_rslora", "use_dora": false,
 *     "fan_in_fan_out": false, "base_model_name_or_path", and peft's other
 *     keys at their neutral values;
 *   tensors base_model.model.<module>.lora_A.weight [r, in] and
 *     .lora_B.weight [out, r], <module> one of trunk.blocks.<i>.attn.qkv,
 *     .attn.proj, .mlp.fc1, .mlp.fc2 and, on AIMv2 (SwiGLU) trunks, .mlp.fc3
 *     (the module paths of the ml-aim layout, for both families).
 *   A module is adapted when the file holds its tensors; each must be named
 *   by target_modules as peft matches them (the whole name, or a suffix
 *   after a dot, or a full match of the expression).
 * Bottleneck adapters: "peft_type": "AIM_ADAPTER", "adapter_dim";
 *   tensors adapter.blocks.<i>.down.weight [a, D], .down.bias [a],
 *   .up.weight [D, a], .up.bias [D], for every block.
 * Prompts: "peft_type": "AIM_PROMPT", "num_virtual_tokens" N, "deep";
 *   tensor prompt.tokens [deep ? depth : 1, N, D].
 * Metadata of adapter_model.safetensors: "format": "pt", "aim.tune" (the
 * configuration as JSON), "aim.model" (the base model as given when the
 * adapter was made) and "aim.trunk_hash" (aim_trunk_hash of its weights,
 * 16 hex digits). */
#ifndef AIM_TUNE_IO_H
#define AIM_TUNE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "model_tune.h"

/* A 64-bit hash of the trunk's weights (every parameter in table order, as
 * F32 values): the same weights give the same hash in any file form. */
uint64_t aim_trunk_hash(const aim_model *m);

/* Write t into directory dir (created if missing; each file written
 * atomically). base_model: what aim.model records (may be NULL). */
int aim_tune_save(const aim_tune *t, const char *dir, const char *base_model,
		  uint64_t trunk_hash);

/* Read the adapter in dir for the trunk of m: a new aim_tune on m's
 * backend. Wrong shapes, blocks the trunk lacks, modules that are not
 * targets, unsupported peft options: errors naming the file and tensor.
 * A base model hash that differs from m's is a warning: its text goes to
 * warning[0..wn) (left empty when there is none; library code does not
 * print). */
int aim_tune_load(aim_tune **out, const char *dir, const aim_model *m, char *warning,
		  size_t wn);

/* W += (α/r)·B·A for every LoRA pair of t, in fp32 on the host, into m's
 * own parameter arena (copied out of a file mapping first). */
int aim_lora_merge(aim_model *m, const aim_tune *t);

/* --adapter DIR: LoRA merged into m's weights once (t freed); other kinds
 * attached to m (frozen trunk). kind: what was applied (may be NULL). */
int aim_tune_apply(aim_model *m, const char *dir, aim_tune_kind *kind, char *warning,
		   size_t wn);

#endif
