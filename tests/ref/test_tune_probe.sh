#!/bin/sh
# aim-probe --tune end to end against the PyTorch reference
# (tests/ref/tune_ref.py), on an AIM v1 and an AIMv2 trunk: for LoRA,
# bottleneck adapters and deep prompts, the adapter directory aim-probe
# writes is read by the Python side (LoRA with peft's matching and scaling;
# on AIMv2 on fc3 too) and, with the head, gives the logits aim-eval -m
# --adapter prints, to 1e-4. LoRA merged by aim-tensor merge gives aim-eval
# the same logits to 1e-5, and aim-extract --adapter the reference features
# (AIMv2: --norm, the post-trunk RMSNorm the probe reads). Full fine-tuning
# writes a model that aim-eval runs, and it differs from the frozen one (the
# trunk was trained; on AIMv2 the post-trunk norm too).
set -eu
$PYTHON -c 'import torch, zstandard' 2>/dev/null || { echo "no torch/zstandard for $PYTHON"; exit 77; }
REF="$AIM_TOP/tests/ref/tune_ref.py"
T0=$(mktemp -d); trap 'rm -rf "$T0"' EXIT
family() { # v1|v2 layers
	T=$T0/$1 L=$2
	if [ $1 = v2 ]; then
		$PYTHON "$REF" make "$T" --v2
		targets=qkv,proj,fc1,fc2,fc3 norm=--norm
	else
		$PYTHON "$REF" make "$T"
		targets=qkv,proj,fc1,fc2 norm=
	fi
	M=$T/model.safetensors P=$T/patches.aimt
	for k in lora adapter prompt; do
		extra=
		[ $k = lora ] && extra="--lora-rank 3 --lora-alpha 6 --lora-targets $targets"
		[ $k = prompt ] && extra="--prompts 2 --deep"
		[ $k = adapter ] && extra="--adapter-dim 4"
		"$BIN/aim-probe" -q --threads 2 -m "$M" --layers $L --tune $k $extra --epochs 3 \
			--batch 4 --accum 2 --lr 3e-2 --warmup 0 --adapter-out "$T/$k" \
			-o "$T/head-$k.safetensors" "$P"
		"$BIN/aim-eval" -q -m "$M" --layers $L --adapter "$T/$k" --head "$T/head-$k.safetensors" \
			--logits-out "$T/logits-$k.aimt" "$P" >/dev/null
		$PYTHON "$REF" eval-logits "$T" "$T/$k" "$T/head-$k.safetensors" "$T/logits-$k.aimt" \
			--layers $L
	done
	"$BIN/aim-tensor" merge -q "$M" "$T/lora" -o "$T/merged.safetensors"
	"$BIN/aim-eval" -q -m "$T/merged.safetensors" --layers $L --head "$T/head-lora.safetensors" \
		--logits-out "$T/logits-merged.aimt" "$P" >/dev/null
	"$BIN/aim-extract" -q -m "$M" --layers $L $norm --adapter "$T/prompt" -o "$T/feat-prompt.aimt" "$P"
	"$BIN/aim-probe" -q --threads 2 -m "$M" --layers $L --tune full --epochs 2 --batch 6 --lr 1e-2 \
		--model-out "$T/full.safetensors" -o "$T/head-full.safetensors" "$P"
	"$BIN/aim-eval" -q -m "$T/full.safetensors" --layers $L --logits-out "$T/logits-full.aimt" "$P" >/dev/null
	$PYTHON - "$T" "$AIM_TOP/tests/ref" "$L" <<'PY'
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import aim_ref
import tune_ref
import torch
T = sys.argv[1]
layers = [int(v) for v in sys.argv[3].split(",")]
lg = lambda n: np.concatenate([t["logits"] for t, _ in aim_ref.read_stream(f"{T}/logits-{n}.aimt")])
a, b = lg("lora"), lg("merged")
d = np.abs(a - b).max() / np.abs(a).max()
print(f"merged (aim-tensor merge) vs --adapter logits: {d:.2e}")
assert d <= 1e-5, d
# aim-extract --adapter prompt: the reference features
sd, mcfg = tune_ref.load_dir(T)
x, y, rows, cols = tune_ref.load_patches(f"{T}/patches.aimt", mcfg)
acfg, ad, _ = tune_ref.read_adapter(f"{T}/prompt")
with torch.no_grad():
    f = tune_ref.features(tune_ref.trunk(sd, mcfg, x, rows, cols, "prompt", acfg, ad), layers,
                          sd, mcfg).numpy()
got = np.concatenate([t["features"] for t, _ in aim_ref.read_stream(f"{T}/feat-prompt.aimt")])
d = np.abs(f - got).max() / np.abs(f).max()
print(f"aim-extract --adapter prompt vs reference features: {d:.2e}")
assert d <= 1e-4, d
# full fine-tuning moved the trunk: its trunk weights differ from the base
t0, _ = aim_ref.read_st(f"{T}/model.safetensors")
t1, _ = aim_ref.read_st(f"{T}/full.safetensors")
moved = max(np.abs(t1[k] - t0[k]).max() for k in t0 if k.startswith("trunk.blocks.0."))
print(f"full fine-tuning moved block 0 by up to {moved:.2e}")
assert moved > 1e-4
if tune_ref.is_v2(mcfg):
    k = "trunk.post_trunk_norm.weight"
    print(f"full fine-tuning moved {k} by up to {np.abs(t1[k] - t0[k]).max():.2e}")
    assert np.abs(t1[k] - t0[k]).max() > 0
assert np.isfinite(lg("full")).all()
PY
}
family v1 1,2
family v2 2
