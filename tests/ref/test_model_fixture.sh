#!/bin/sh
# The committed tiny model (tests/data/model/tiny, made by
# make_model_fixtures.py) against torch's stored outputs: runs without torch.
# The same weights from model.safetensors, from hf/ (config.json +
# pytorch_model.bin) and from backbone.pth + head.pth give identical features.
set -eu
"$PYTHON" -c "import numpy, zstandard" 2>/dev/null || { echo "numpy/zstandard not installed"; exit 77; }
REF="$PYTHON $AIM_TOP/tests/ref/aim_ref.py"
D=$AIM_TOP/tests/data/model/tiny
X="$BIN/aim-extract --threads 2 -q"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$X -m "$D/model.safetensors" --layers all --stack "$D/patches.aimt" -o "$T/st.aimt"
$REF compare "$T/st.aimt" "$D/ref.safetensors" --key blocks
$X -m "$D/hf" --layers all --stack "$D/patches.aimt" -o "$T/hf.aimt"
$X -m "$D/backbone.pth" --head "$D/head.pth" --layers all --stack "$D/patches.aimt" -o "$T/pth.aimt"
$REF same "$T/st.aimt" "$T/hf.aimt"
$REF same "$T/st.aimt" "$T/pth.aimt"
$X -m "$D/hf" --pool attn "$D/patches.aimt" -o "$T/attn.aimt"
$REF compare "$T/attn.aimt" "$D/ref.safetensors" --key probe_attn --meta aim.layers='[0,1]' --meta aim.pool=attn
$X -m "$D/backbone.pth" --head "$D/head.pth" --pool attn "$D/patches.aimt" -o "$T/attn2.aimt"
$REF same "$T/attn.aimt" "$T/attn2.aimt"
# --shard: the two halves hold every sample once, in order within each
$X -m "$D/model.safetensors" --shard 0/2 "$D/patches.aimt" -o "$T/s0.aimt"
$X -m "$D/model.safetensors" --shard 1/2 "$D/patches.aimt" -o "$T/s1.aimt"
"$PYTHON" - "$T" <<'PY'
import sys
sys.path.insert(0, __import__("os").environ["AIM_TOP"] + "/tests/ref")
import numpy as np, aim_ref
t = sys.argv[1]
ids = [np.concatenate([r[0]["id"] for r in aim_ref.read_stream("%s/s%d.aimt" % (t, k))]) for k in (0, 1)]
assert list(ids[0]) == [0, 2, 4] and list(ids[1]) == [1, 3], ids
names = [n for r in aim_ref.read_stream(t + "/s1.aimt") for n in __import__("json").loads(r[1]["aim.names"])]
assert names == ["img1.png", "img3.png"], names
PY
echo "fixture ok"
