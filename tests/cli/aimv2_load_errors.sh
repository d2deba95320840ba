#!/bin/sh
# Loading AIMv2 checkpoints: a damaged file in each layout is a one-line
# error naming the file and the tensor (or key), exit 1; a learned
# position table refuses another grid. The models are made by
# tests/ref/aimv2_ref.py (skipped without torch).
set -u
"$PYTHON" -c "import torch, zstandard" 2>/dev/null || { echo "torch not installed"; exit 77; }
X="$BIN/aim-extract -q"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail=0
check() { # name, expected exit, expected stderr substring, command...
	name=$1 want_rc=$2 want_err=$3; shift 3
	"$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	if [ $rc -ne "$want_rc" ]; then
		echo "FAIL $name: exit $rc, expected $want_rc; stderr: $(cat "$T/err")"; fail=1
	elif ! grep -qF -- "$want_err" "$T/err"; then
		echo "FAIL $name: stderr lacks '$want_err': $(cat "$T/err")"; fail=1
	elif [ "$(wc -l <"$T/err")" -ne 1 ]; then
		echo "FAIL $name: more than one line: $(cat "$T/err")"; fail=1
	else
		echo "ok $name"
	fi
}
# edit DIR DROP [ADD]: rewrite DIR/model.safetensors without tensor DROP (and
# with a copy of the first tensor named ADD)
edit() {
	"$PYTHON" - "$@" <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ["AIM_TOP"], "tests", "ref"))
from aim_ref import read_st, st_bytes
d, drop = sys.argv[1], sys.argv[2]
t, m = read_st(d + "/model.safetensors")
if drop:
    del t[drop]
if len(sys.argv) > 3:
    t[sys.argv[3]] = next(iter(t.values()))
open(d + "/model.safetensors", "wb").write(st_bytes(t, m or None))
PY
}
"$PYTHON" "$AIM_TOP/tests/ref/aimv2_ref.py" gen "$T/m" --dim 32 --heads 2 --depth 2 --rows 4 \
	--cols 4 --patch 4 --mlp-hidden 64 --grid2 3 5
P=$T/m/patches.aimt
cp -r "$T/m/hf" "$T/hf1" && edit "$T/hf1" encoder.layers.1.attention.k_proj.weight
check "transformers: a missing k_proj" 1 "$T/hf1/model.safetensors: missing tensor encoder.layers.1.attention.k_proj.weight" $X -m "$T/hf1" "$P"
cp -r "$T/m/hf" "$T/hf2" && edit "$T/hf2" encoder.layers.0.rms_norm2.weight
check "transformers: a missing norm" 1 "missing tensor encoder.layers.0.rms_norm2.weight" $X -m "$T/hf2" "$P"
cp -r "$T/m/hf" "$T/hf3" && edit "$T/hf3" "" encoder.layers.0.ffn.extra.weight
check "transformers: an unknown tensor" 1 "tensor encoder.layers.0.ffn.extra.weight is not part of an AIMv2 vision trunk in the transformers layout" $X -m "$T/hf3" "$P"
cp -r "$T/m/hf" "$T/hf4" && edit "$T/hf4" encoder.layers.0.attention.q_proj.weight
check "transformers: a missing q_proj" 1 "missing tensor encoder.layers.0.attention.q_proj.weight" $X -m "$T/hf4" "$P"
cp -r "$T/m/hf" "$T/hf5" && edit "$T/hf5" embeddings.position_embedding.weight
check "transformers: no table, is_native false" 1 "missing tensor embeddings.position_embedding.weight" $X -m "$T/hf5" "$P"
cp -r "$T/m/timm" "$T/t1"
"$PYTHON" - "$T/t1" <<'PY'
import json, sys
p = sys.argv[1] + "/config.json"
c = json.load(open(p)); c["architecture"] = "vit_large_patch14_clip_224"; json.dump(c, open(p, "w"))
PY
check "timm: not an AIMv2 architecture" 1 "timm architecture 'vit_large_patch14_clip_224' is not a published AIMv2 model" $X -m "$T/t1" "$P"
cp -r "$T/m/timm" "$T/t2" && edit "$T/t2" blocks.1.mlp.fc1_x.weight
check "timm: a missing fc1_x" 1 "missing tensor blocks.1.mlp.fc1_x.weight" $X -m "$T/t2" "$P"
cp -r "$T/m/mlaim" "$T/a1" && edit "$T/a1" trunk.blocks.0.mlp.fc3.weight
check "ml-aim: a missing fc3" 1 "missing tensor trunk.blocks.0.mlp.fc3.weight" $X -m "$T/a1" "$P"
"$PYTHON" - "$T/a1" <<'PY'
import json, sys
p = sys.argv[1] + "/config.json"
c = json.load(open(p)); del c["hidden_size"]; json.dump(c, open(p, "w"))
PY
check "ml-aim: config lacks hidden_size" 1 "config.json: architecture lacks \"hidden_size\"" $X -m "$T/a1" "$P"
check "learned table, another grid" 1 "learned position table is for a 4x4 grid" $X -m "$T/m/mlaim" "$T/m/patches2.aimt"
exit $fail
