#!/bin/sh
# Adapting the trunk against a PyTorch reference (tests/ref/tune_ref.py,
# LoRA with peft's semantics reimplemented): for LoRA (peft-layout adapters
# written by the Python side: suffix targets, a regular expression with
# rslora), bottleneck adapters, shallow and deep prompts, full fine-tuning
# and a frozen trunk, one joint step of trunk + attentive head
# (tests/unit/test_tune.c in dump mode) must give the reference's logits,
# loss and every trainable gradient to 1e-4 relative, the inference
# features to 1e-4, and LoRA merged into the weights the unmerged features
# to 1e-5. Features from blocks 0,1 of 3 (the top block is not run) and
# 1,2; micro-batches of 4 and 6 images.
set -eu
$PYTHON -c 'import torch, zstandard' 2>/dev/null || { echo "no torch/zstandard for $PYTHON"; exit 77; }
REF="$AIM_TOP/tests/ref/tune_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PYTHON "$REF" make "$T"
run() { # kind adapter layers micro
	"$AIM_TOP/$BUILD/tests/test_tune" dump "$T/model.safetensors" "$2" "$T/head.safetensors" \
		"$T/patches.aimt" "$3" "$4" "$T/dump.safetensors"
	$PYTHON "$REF" check "$T" "$1" "$2" "$T/dump.safetensors" --layers "$3" --micro "$4"
}
run lora "$T/lora" 1,2 4
run lora "$T/lora_re" 0,1 6
run adapter "$T/adapter" 0,1 4
run prompt "$T/prompt" 1,2 6
run prompt "$T/deep" 0,1 4
run full full 0,1 4
run none - 1,2 6
