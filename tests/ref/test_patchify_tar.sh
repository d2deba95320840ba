#!/bin/sh
# aim-patchify on WebDataset tar shards: KEY.jpg/KEY.png samples with their
# KEY.cls labels (-1 without one), other members ignored, pixels equal to
# Pillow + torchvision; shuffled epochs through the shuffle buffer visit
# every sample once; --shard splits the listing.
set -eu
PY=${PYTHON:-/usr/bin/python3}
REF="$AIM_TOP/tests/ref/patchify_ref.py"
$PY -c 'import torchvision, PIL, zstandard' 2>/dev/null || { echo "torchvision/Pillow/zstandard not installed"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PY "$REF" gen "$T/data" odd
mkdir "$T/shards"
$PY "$REF" gen-tar "$T/data/odd-sizes" "$T/shards" "$T/expected"
"$BIN/aim-patchify" -q --size 56 --patch 14 -o "$T/t.aimt" "$T"/shards/*.tar
$PY "$REF" labels-tar "$T/t.aimt" "$T/expected"
$PY "$REF" val "$T/t.aimt" 56 64 14 3
"$BIN/aim-patchify" -q --size 28 --patch 14 --epochs 3 --shuffle --shuffle-buffer 4 -o "$T/s.aimt" "$T"/shards/*.tar
$PY "$REF" epochs "$T/s.aimt" 3
"$BIN/aim-patchify" -q --size 28 --patch 14 --shard 1/3 -o "$T/h.aimt" "$T"/shards/*.tar
n=$($PY "$REF" count "$T/t.aimt" | cut -d' ' -f1)
ids=$($PY "$REF" count "$T/h.aimt" | cut -d' ' -f2-)
want=$(seq 1 3 $((n - 1)) | tr '\n' ' ' | sed 's/ $//')
[ "$ids" = "$want" ] || { echo "--shard 1/3 gave ids '$ids', want '$want'"; exit 1; }
echo "shard 1/3: ok"
