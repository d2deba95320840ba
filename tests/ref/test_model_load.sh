#!/bin/sh
# Loader robustness: each broken model is refused with exit 1 and a message
# naming the problem (tensor name, disagreeing sources).
set -u
"$PYTHON" -c "import numpy" 2>/dev/null || { echo "numpy not installed"; exit 77; }
D=$AIM_TOP/tests/data/model/tiny
X="$BIN/aim-extract --threads 1 -q"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail=0
# mutate OUT PYTHON-EXPRESSION-ON-(t, m): rewrite the tiny model.safetensors
mutate() {
	"$PYTHON" - "$D/model.safetensors" "$1" "$2" <<'PY'
import json, sys
sys.path.insert(0, __import__("os").environ["AIM_TOP"] + "/tests/ref")
import numpy as np, aim_ref
t, m = aim_ref.read_st(sys.argv[1])
exec(sys.argv[3])
open(sys.argv[2], "wb").write(aim_ref.st_bytes(t, m))
PY
}
expect() { # name, expected stderr substring, command...
	name=$1 want=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -ne 1 ] || ! grep -qF -- "$want" "$T/err"; then
		echo "FAIL $name: exit $rc, stderr: $(cat "$T/err")"; fail=1
	else
		echo "ok $name: $(cat "$T/err")"
	fi
}
P=$D/patches.aimt
mkdir -p "$T/m"
mutate "$T/m/shape.safetensors" 't["trunk.blocks.1.mlp.fc1.weight"] = t["trunk.blocks.1.mlp.fc1.weight"][:100]'
expect "wrong shape" "trunk.blocks.1.mlp.fc1.weight has shape [100, 32]" $X -m "$T/m/shape.safetensors" "$P"
mutate "$T/m/missing.safetensors" 'del t["trunk.blocks.0.norm_2.bias"]'
expect "missing tensor" "missing tensor trunk.blocks.0.norm_2.bias" $X -m "$T/m/missing.safetensors" "$P"
mutate "$T/m/deeper.safetensors" 'c = json.loads(m["aim.config"]); c["num_blocks"] = 3; c["probe_layers"] = 1; m["aim.config"] = json.dumps(c)'
expect "config deeper than weights" "missing tensor trunk.blocks.2." $X -m "$T/m/deeper.safetensors" "$P"
mutate "$T/m/shallow.safetensors" 'c = json.loads(m["aim.config"]); c["num_blocks"] = 1; c["probe_layers"] = 1; m["aim.config"] = json.dumps(c)'
expect "weights deeper than config" "unexpected tensor trunk.blocks.1." $X -m "$T/m/shallow.safetensors" "$P"
mutate "$T/m/heads.safetensors" 'c = json.loads(m["aim.config"]); c["embed_dim"] = 48; m["aim.config"] = json.dumps(c)'
expect "config dim vs weights" "has shape [32, 3, 4, 4], the architecture needs [48, 3, 4, 4]" $X -m "$T/m/heads.safetensors" "$P"
mutate "$T/m/bad.safetensors" 't["trunk.blocks.0.attn.qkv.weight"] = t["trunk.blocks.0.attn.qkv.weight"].astype(np.int64)'
expect "integer weights" "trunk.blocks.0.attn.qkv.weight has dtype I64" $X -m "$T/m/bad.safetensors" "$P"
# two sources of the architecture that disagree
mkdir -p "$T/two"
cp "$D/model.safetensors" "$T/two/"
sed 's/"num_heads": 2/"num_heads": 4/' "$D/config.json" >"$T/two/config.json"
expect "aim.config vs config.json" "architectures disagree" $X -m "$T/two/model.safetensors" "$P"
expect "aim.config vs --arch" "architectures disagree" $X -m "$D/model.safetensors" --arch aim-600M "$P"
mkdir -p "$T/bare"
cp "$D/backbone.pth" "$T/bare/"
expect "no architecture" "give --arch" $X -m "$T/bare/backbone.pth" "$P"
expect "bare .pth vs --arch" "has shape" $X -m "$T/bare/backbone.pth" --arch aim-600M "$P"
expect "head file with trunk tensors" "the head file holds trunk tensor" $X -m "$D/model.safetensors" --head "$D/backbone.pth" "$P"
mkdir -p "$T/emptyhf"
cp "$D/config.json" "$T/emptyhf/"
expect "HF dir without weights" "neither model.safetensors nor pytorch_model.bin" $X -m "$T/emptyhf" "$P"
expect "attn pool without head" "--pool attn needs the probe head" $X -m "$D/backbone.pth" --pool attn "$P"
expect "unknown arch" "unknown architecture 'aim-2B'" $X -m "$T/bare/backbone.pth" --arch aim-2B "$P"
exit $fail
