#!/bin/sh
# aim-probe --tune on an AIMv2 trunk (random models of both families made
# by tests/ref/tune_ref.py; skipped without torch): every method trains (no
# refusal), a LoRA adapter with fc3 applies in aim-probe, aim-extract and
# aim-eval, and adapters that do not fit the family are one-line errors
# naming the file and tensor (exit 1): an AIM v1 adapter on an AIMv2 model
# (its fc1 has the GELU MLP's width), an fc3 adapter on an AIM v1 model, an
# fc3 tensor target_modules does not name; --lora-targets fc3 on an AIM v1
# model is a usage error (exit 2; the message and the --help hint).
set -eu
"$PYTHON" -c "import torch, zstandard" 2>/dev/null || { echo "torch not installed"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
expect() { # code pattern command...
	code=$1 pat=$2; shift 2
	set +e; "$@" >"$work/out" 2>"$work/err"; rc=$?; set -e
	[ $rc -eq "$code" ] || { cat "$work/err"; fail "$* exited $rc, wanted $code"; }
	grep -qF -- "$pat" "$work/err" || { cat "$work/err"; fail "$*: no '$pat' in the message"; }
	[ "$(wc -l <"$work/err")" -le 2 ] || { cat "$work/err"; fail "$*: more than a line or two"; }
}
"$PYTHON" "$AIM_TOP/tests/ref/tune_ref.py" make "$work/v1"
"$PYTHON" "$AIM_TOP/tests/ref/tune_ref.py" make "$work/v2" --v2
M1=$work/v1/model.safetensors P1=$work/v1/patches.aimt
M2=$work/v2/model.safetensors P2=$work/v2/patches.aimt
probe() { "$BIN/aim-probe" -q --threads 2 "$@"; }
o="-o $work/h.safetensors"

# every method runs on AIMv2 (the old "not supported yet" refusal is gone)
probe -m "$M2" --tune lora --lora-rank 2 --lora-targets qkv,fc3 --epochs 1 --adapter-out "$work/l2" \
	$o "$P2" 2>"$work/err" || { cat "$work/err"; fail "--tune lora on AIMv2"; }
! grep -q "not supported" "$work/err" || fail "--tune lora on AIMv2 still refused"
grep -q '"mlp.fc3"' "$work/l2/adapter_config.json" || fail "fc3 not in target_modules"
for k in full adapter prompt; do
	probe -m "$M2" --tune $k --epochs 1 $o "$P2" || fail "--tune $k on AIMv2"
done
# and the fc3 adapter applies (merged) in each tool that takes --adapter
probe -m "$M2" --adapter "$work/l2" --epochs 1 $o "$P2" || fail "aim-probe --adapter on AIMv2"
"$BIN/aim-extract" -q -m "$M2" --norm --adapter "$work/l2" -o "$work/f.aimt" "$P2" ||
	fail "aim-extract --adapter on AIMv2"
"$BIN/aim-eval" -q -m "$M2" --adapter "$work/l2" --head "$work/h.safetensors" "$P2" >/dev/null ||
	fail "aim-eval --adapter on AIMv2"

# the family must match
expect 2 "--lora-targets fc3: $M1: an aim-v1 model's MLP has no fc3" \
	probe -m "$M1" --tune lora --lora-targets fc3 $o "$P1"
expect 1 "$work/v1/lora/adapter_model.safetensors: tensor base_model.model.trunk.blocks.0.mlp.fc1.lora_B.weight is F32 [24, 4]; this model needs F32 [20, 4]" \
	"$BIN/aim-extract" -m "$M2" --adapter "$work/v1/lora" "$P2"
expect 1 "$work/l2/adapter_model.safetensors: tensor base_model.model.trunk.blocks.0.mlp.fc3.lora_A.weight: this aim-v1 model's MLP has no fc3" \
	"$BIN/aim-eval" -m "$M1" --adapter "$work/l2" "$P1"
expect 1 "mlp.fc3.lora_A.weight: this aim-v1 model's MLP has no fc3" \
	"$BIN/aim-tensor" merge "$M1" "$work/l2" -o "$work/x.safetensors"
[ ! -e "$work/x.safetensors" ] || fail "a failed merge left an output"
cp -r "$work/l2" "$work/nofc3"
sed -i 's/"mlp.fc3"/"mlp.fc9"/' "$work/nofc3/adapter_config.json"
expect 1 "module trunk.blocks.0.mlp.fc3 is not named by target_modules" \
	"$BIN/aim-probe" -m "$M2" --adapter "$work/nofc3" $o "$P2"
echo "tune aimv2 errors: ok"
