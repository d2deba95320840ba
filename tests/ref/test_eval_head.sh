#!/bin/sh
# aim-eval --head on a features stream against the published evaluation
# semantics in PyTorch (utils.accuracy top-1/top-5, mean cross-entropy,
# per-class accuracy): a random head in the Hugging Face layout (published
# names, heads from config.json beside it), attentive with two queries and
# linear, F32 and F16 features, a record of unknown labels; and the
# --logits-out stream.
set -eu
"$PYTHON" -c 'import torch, numpy, zstandard' 2>/dev/null || { echo "torch not installed"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for kind in attentive linear; do
	for dt in f32 f16; do
		echo "== $kind $dt"
		"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" eval-case "$work" $kind $dt
		"$BIN/aim-eval" -q --json --head "$work/hf/model.safetensors" \
			--logits-out "$work/logits.aimt" "$work/features.aimt" >"$work/got.json"
		"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" eval-check "$work" "$work/got.json" "$work/logits.aimt"
		# the logits stream scores the same
		"$BIN/aim-eval" -q --json "$work/logits.aimt" >"$work/got2.json"
		"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" eval-check "$work" "$work/got2.json"
	done
done
