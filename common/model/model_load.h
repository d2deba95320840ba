/* Loading AIM v1 and AIMv2 weights, and converting them to one safetensors
 * file.
 *
 * The model path may be:
 *   - a .safetensors file (architecture from its "aim.config" metadata, else
 *     a config.json beside it, else --arch);
 *   - a directory in the Hugging Face layout: config.json with
 *     model.safetensors or pytorch_model.bin. AIMv2 directories come in
 *     three layouts, recognised by their tensor names (model_layouts.h):
 *     ml-aim (config.json model_type "aimv2"), transformers
 *     ("aimv2_vision_model") and timm ("architecture": "aimv2_…", with
 *     "model_args" when the shape is not the preset's);
 *   - a PyTorch checkpoint (torch.save zip, whatever its name), e.g. the released
 *     aim_600m_2bimgs_attnprobe_backbone.pth, with --arch (or a config.json
 *     beside it); its probe head from a second file (--head).
 * The family comes from the architecture (norm and MLP kind), the biases
 * and the position table's kind from the tensors the file has. Every
 * parameter is checked by name and shape; a missing, misshapen or
 * unexpected trunk tensor is an error naming it (as the file names it), and
 * so is any tensor that belongs to no known part: the file may carry a
 * probe head (head.*) and, as aim-train checkpoints do, a pixel head
 * (pixel_head.*) and AdamW moments (optim.m.*, optim.v.*), nothing else.
 * Files are told apart by content (weights_file.h). Two sources of the
 * architecture that disagree are an error. F32 tensors of a safetensors
 * file are used in place (mmap); F16/BF16 ones are converted on load.
 * Tensors under "head." (from the model file or the head file) are kept,
 * as F32, in model->head for the probe head (probe_head.h). */
#ifndef AIM_MODEL_LOAD_H
#define AIM_MODEL_LOAD_H

#include "model.h"
#include "tensor.h"

typedef struct {
	const char *arch;    /* preset name (aim-600M ...) or NULL */
	const char *head;    /* probe-head file (.pth or .safetensors) or NULL */
	const char *device;  /* backend: "cpu" (NULL), "cuda", "auto" */
} aim_load_opts;

int aim_model_load(aim_model **out, const char *path, const aim_load_opts *o);

/* Read the model at `in` (any form above, with `head` and `arch` as in
 * aim_load_opts) and write it as one safetensors file at `out` (written
 * atomically) with the published tensor names, the "aim.config"
 * metadata and the head tensors, in dtype F32, F16 or BF16. */
int aim_model_convert(const char *in, const char *head, const char *out, const char *arch,
		      aim_dtype dtype);

/* The model's parameters (and head) as a record of tensors pointing into
 * the model (F32), with "aim.config" metadata: what a checkpoint writer
 * serialises. The record must not outlive the model. */
int aim_model_to_record(const aim_model *m, aim_record *r);

#endif
