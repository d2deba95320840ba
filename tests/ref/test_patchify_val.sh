#!/bin/sh
# aim-patchify --transform val against Pillow + torchvision, pixel for pixel:
# every colour mode of JPEG and PNG, odd and extreme sizes, 1 and 3
# channels, a resize smaller than the crop (padding), the 28x28 identity,
# and ids/labels equal to torchvision's ImageFolder.
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

$PY "$REF" val "$T/rgb.aimt" 224 256 14 3 "$T/l.aimt" 224 256 14 1 \
	"$T/pad.aimt" 30 17 5 3 "$T/padl.aimt" 32 20 8 1 "$T/fm.aimt" 28 28 7 1
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
