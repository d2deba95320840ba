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
# 1,2; micro-batches of 4 and 6 images. The same for an AIMv2 trunk
# (RMSNorm, SwiGLU with LoRA on fc3 too, a learned position table, features
# through the post-trunk RMSNorm, whose weight full fine-tuning trains),
# also from the top block alone (the paper's probe input) and loaded from
# the ml-aim Hugging Face layout. Stochastic depth (full, LoRA, deep
# prompts): the reference applies the branch factors the C side drew.
set -eu
$PYTHON -c 'import torch, zstandard' 2>/dev/null || { echo "no torch/zstandard for $PYTHON"; exit 77; }
REF="$AIM_TOP/tests/ref/tune_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PYTHON "$REF" make "$T/v1"
$PYTHON "$REF" make "$T/v2" --v2
run() { # dir model kind adapter layers micro [drop-path]
	ad=$4
	case $ad in full|-) ;; *) ad=$1/$ad ;; esac
	"$AIM_TOP/$BUILD/tests/test_tune" dump "$2" "$ad" "$1/head.safetensors" \
		"$1/patches.aimt" "$5" "$6" "$T/dump.safetensors" ${7:-}
	echo "$1 ($2): $3 $4, layers $5, micro-batches of $6${7:+, stochastic depth $7}"
	$PYTHON "$REF" check "$1" "$3" "$ad" "$T/dump.safetensors" --layers "$5" --micro "$6"
}
for v in v1 v2; do
	D=$T/$v M=$T/$v/model.safetensors
	run "$D" "$M" lora lora 1,2 4
	run "$D" "$M" lora lora_re 0,1 6
	run "$D" "$M" adapter adapter 0,1 4
	run "$D" "$M" prompt prompt 1,2 6
	run "$D" "$M" prompt deep 0,1 4
	run "$D" "$M" full full 0,1 4
	run "$D" "$M" none - 1,2 6
	run "$D" "$M" full full 0,1,2 4 0.6
	run "$D" "$M" lora lora 1,2 6 0.6
	run "$D" "$M" prompt deep 0,1,2 4 0.6
done
D=$T/v2
run "$D" "$D/model.safetensors" full full 2 3
run "$D" "$D/model.safetensors" adapter adapter 2 6
run "$D" "$D/mlaim" lora lora 2 4
