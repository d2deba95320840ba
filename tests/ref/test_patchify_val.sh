#!/bin/sh
# aim-patchify --transform val against Pillow + torchvision, pixel for pixel:
# every colour mode of JPEG and PNG, odd and extreme sizes, 1 and 3
# channels, a resize smaller than the crop (padding), the 28x28 identity,
# ids/labels equal to torchvision's ImageFolder, and the --preset of each
# family (aimv2-336: resize the shorter side to 336, crop 336, CLIP mean/std
# in the metadata; an explicit --size wins over the preset's).
set -eu
PY=${PYTHON:-/usr/bin/python3}
REF="$AIM_TOP/tests/ref/patchify_ref.py"
$PY -c 'import torchvision, PIL, zstandard' 2>/dev/null || { echo "torchvision/Pillow/zstandard not installed"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PY "$REF" gen "$T/data"

"$BIN/aim-patchify" -q --threads 2 -o "$T/rgb.aimt" "$T/data"
"$BIN/aim-patchify" -q --threads 2 --channels 1 -o "$T/l.aimt" "$T/data"
"$BIN/aim-patchify" -q --threads 2 --size 30 --resize 17 --patch 5 -o "$T/pad.aimt" "$T/data"
"$BIN/aim-patchify" -q --threads 1 --channels 1 --size 32 --resize 20 --patch 8 --classes none -o "$T/padl.aimt" "$T/data"
"$BIN/aim-patchify" -q --channels 1 --size 28 --resize 28 --patch 7 -o "$T/fm.aimt" "$T/data/fm28"
"$BIN/aim-patchify" -q --threads 2 --preset aimv2-336 -o "$T/v2.aimt" "$T/data"
"$BIN/aim-patchify" -q --threads 2 --preset aimv2-224 --size 112 -o "$T/v2s.aimt" "$T/data"
"$BIN/aim-patchify" -q --threads 2 --preset aim-v1 -o "$T/v1.aimt" "$T/data"
cmp "$T/v1.aimt" "$T/rgb.aimt"
$PY - "$T/v2.aimt" "$T/v2s.aimt" <<'PYEOF'
import json, sys
sys.path.insert(0, __import__("os").environ["AIM_TOP"] + "/tests/ref")
from aim_ref import read_stream
for path, grid in zip(sys.argv[1:], (24, 8)):
    m = read_stream(path)[0][1]
    assert json.loads(m["aim.mean"]) == [0.48145466, 0.4578275, 0.40821073], m["aim.mean"]
    assert json.loads(m["aim.std"]) == [0.26862954, 0.26130258, 0.27577711], m["aim.std"]
    assert json.loads(m["aim.grid"]) == [grid, grid], m["aim.grid"]
print("presets: CLIP mean/std recorded")
PYEOF

$PY "$REF" val "$T/rgb.aimt" 224 256 14 3 "$T/l.aimt" 224 256 14 1 \
	"$T/pad.aimt" 30 17 5 3 "$T/padl.aimt" 32 20 8 1 "$T/fm.aimt" 28 28 7 1 \
	"$T/v2.aimt" 336 336 14 3 "$T/v2s.aimt" 112 112 14 3
$PY "$REF" labels "$T/rgb.aimt" "$T/data"

# The 28x28 identity is exact: the patches are the PNG's own pixels.
$PY - "$T/fm.aimt" "$T/data/fm28" "$REF" <<'PYEOF'
import sys, numpy as np, importlib.util
from PIL import Image
spec = importlib.util.spec_from_file_location("ref", sys.argv[3]); ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)
for _i, _l, name, got, _e in ref.samples(sys.argv[1]):
    a = np.asarray(Image.open(name))
    assert (ref.to_patches(a, 7, 1) == got).all(), name
print("28x28 identity: ok")
PYEOF
