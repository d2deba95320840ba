#!/bin/sh
# aim-probe --tune and --adapter: usage errors exit 2 with a message naming
# the option; adapters that do not fit (a rank the tensors do not have, a
# peft option aim cannot honour, a module that is not a target, a kind that
# cannot merge, a missing directory) exit 1 with a message naming the file
# and tensor; an adapter trained on other weights warns and still applies.
set -eu
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
M=$AIM_TOP/tests/data/model/tiny/model.safetensors
P=$AIM_TOP/tests/data/model/tiny/patches.aimt
fail() { echo "FAIL: $*"; exit 1; }
expect() { # code pattern command...
	code=$1 pat=$2; shift 2
	set +e; "$@" >"$work/out" 2>"$work/err"; rc=$?; set -e
	[ $rc -eq "$code" ] || { cat "$work/err"; fail "$* exited $rc, wanted $code"; }
	grep -q -- "$pat" "$work/err" || { cat "$work/err"; fail "$*: no '$pat' in the message"; }
	[ "$(wc -l <"$work/err")" -le 2 ] || { cat "$work/err"; fail "$*: more than a line or two"; }
}
probe() { "$BIN/aim-probe" -q --threads 2 "$@"; }
o="-o $work/h.safetensors"
expect 2 "--tune: 'big'" probe -m "$M" --tune big $o "$P"
expect 2 "need -m MODEL" probe --tune lora $o "$P"
expect 2 "--lora-\*: needs --tune lora" probe -m "$M" --tune adapter --lora-rank 4 $o "$P"
expect 2 "--lora-targets: LoRA target 'mlp'" probe -m "$M" --tune lora --lora-targets qkv,mlp $o "$P"
expect 2 "give one --lr" probe -m "$M" --tune lora --lr 1e-3,1e-2 $o "$P"
expect 2 "--adapter-out: full fine-tuning" probe -m "$M" --tune full --adapter-out "$work/a" $o "$P"
expect 2 "--model-out: only --tune full" probe -m "$M" --tune lora --model-out "$work/m" $o "$P"
expect 2 "--accum 9: more micro-batches" probe -m "$M" --tune lora --batch 8 --accum 9 $o "$P"
expect 2 "need --tune" probe -m "$M" --accum 2 $o "$P"
expect 2 "need --tune" probe -m "$M" --drop-path 0.1 $o "$P"
expect 2 "--drop-path: not with --tune adapter" probe -m "$M" --tune adapter --drop-path 0.1 $o "$P"
expect 2 "--drop-path" probe -m "$M" --tune full --drop-path 1 $o "$P"

# stochastic depth: rate 0 is the plain step, bit for bit; a rate changes
# the training, and the same seed repeats it
probe -m "$M" --tune full --epochs 1 -o "$work/d0.safetensors" "$P"
probe -m "$M" --tune full --epochs 1 --drop-path 0 -o "$work/d00.safetensors" "$P"
cmp -s "$work/d0.safetensors" "$work/d00.safetensors" || fail "--drop-path 0 changed the head"
probe -m "$M" --tune full --epochs 1 --drop-path 0.5 -o "$work/d5.safetensors" "$P"
probe -m "$M" --tune full --epochs 1 --drop-path 0.5 -o "$work/d5b.safetensors" "$P"
cmp -s "$work/d0.safetensors" "$work/d5.safetensors" && fail "--drop-path 0.5 changed nothing"
cmp -s "$work/d5.safetensors" "$work/d5b.safetensors" || fail "--drop-path 0.5 did not repeat"

# a LoRA adapter of rank 2 on every linear layer, and a prompt adapter
probe -m "$M" --tune lora --lora-rank 2 --lora-targets qkv,proj,fc1,fc2 --epochs 1 \
	--adapter-out "$work/lora" $o "$P"
probe -m "$M" --tune prompt --prompts 2 --epochs 1 --adapter-out "$work/prompt" $o "$P"
grep -q '"peft_type": "LORA"' "$work/lora/adapter_config.json" || fail "no peft_type LORA"
grep -q '"attn.qkv"' "$work/lora/adapter_config.json" || fail "targets not written as suffixes"
"$BIN/aim-eval" -q -m "$M" --adapter "$work/lora" --head "$work/h.safetensors" "$P" >/dev/null

expect 1 "$work/nothing: not an adapter directory" "$BIN/aim-eval" -m "$M" --adapter "$work/nothing" "$P"
cp -r "$work/lora" "$work/r4"
sed -i 's/"r": 2/"r": 4/' "$work/r4/adapter_config.json"
expect 1 "lora_A.weight is F32 \[2, " "$BIN/aim-extract" -m "$M" --adapter "$work/r4" "$P"
cp -r "$work/lora" "$work/bias"
sed -i 's/"bias": "none"/"bias": "all"/' "$work/bias/adapter_config.json"
expect 1 "bias \"all\": only \"none\"" "$BIN/aim-eval" -m "$M" --adapter "$work/bias" "$P"
cp -r "$work/lora" "$work/narrow"
sed -i 's/"mlp.fc2"/"mlp.fc9"/' "$work/narrow/adapter_config.json"
expect 1 "mlp.fc2 is not named by target_modules" "$BIN/aim-tensor" merge "$M" "$work/narrow" -o "$work/x.safetensors"
expect 1 "a prompt adapter cannot be merged" "$BIN/aim-tensor" merge "$M" "$work/prompt" -o "$work/x.safetensors"
[ ! -e "$work/x.safetensors" ] || fail "a failed merge left an output"
expect 2 "merge needs -o" "$BIN/aim-tensor" merge "$M" "$work/lora"

# other weights: a warning, and the adapter still applies
"$BIN/aim-tensor" merge "$M" "$work/lora" -o "$work/merged.safetensors"
expect 0 "made for other trunk weights" "$BIN/aim-eval" -q -m "$work/merged.safetensors" \
	--adapter "$work/lora" --head "$work/h.safetensors" "$P"
echo "tune errors: ok"
