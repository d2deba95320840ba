#!/bin/sh
# aim-patchify --transform train: every sample equals torchvision's
# resized_crop (bicubic), or with --translate Pad + crop, + hflip + adjust_brightness/contrast/saturation
# applied with the logged parameters; the output depends only on the seed
# (same seed: same bytes, whatever the thread count or batch size; another
# seed: other bytes); --epochs/--shuffle visit every image once per epoch.
set -eu
PY=${PYTHON:-/usr/bin/python3}
REF="$AIM_TOP/tests/ref/patchify_ref.py"
$PY -c 'import torchvision, PIL, zstandard' 2>/dev/null || { echo "torchvision/Pillow/zstandard not installed"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PY "$REF" gen "$T/data"
A="--transform train --jitter 0.4,0.4,0.4 --epochs 2 --shuffle --seed 7 --level 0"
"$BIN/aim-patchify" -q $A --threads 2 --log-augment "$T/log.tsv" -o "$T/a.aimt" "$T/data/jpeg" "$T/data/png" "$T/data/odd-sizes"
$PY "$REF" train "$T/a.aimt" "$T/log.tsv" 224 14 3
"$BIN/aim-patchify" -q --transform train --channels 1 --jitter 0.5,0.5 --seed 3 --size 28 --patch 7 \
	--log-augment "$T/log1.tsv" -o "$T/g.aimt" "$T/data/odd-sizes" "$T/data/fm28"
$PY "$REF" train "$T/g.aimt" "$T/log1.tsv" 28 7 1
# --translate: RandomCrop(S, padding=N, pad_if_needed=True), on images
# smaller than, as large as and larger than S, in gray and colour
"$BIN/aim-patchify" -q --transform train --translate 3 --channels 1 --jitter 0.3 --epochs 3 --seed 4 --size 28 --patch 7 \
	--log-augment "$T/log2.tsv" -o "$T/t.aimt" "$T/data/odd-sizes" "$T/data/fm28"
$PY "$REF" train "$T/t.aimt" "$T/log2.tsv" 28 7 1 3
"$BIN/aim-patchify" -q --transform train --translate 16 --seed 5 --size 224 \
	--log-augment "$T/log3.tsv" -o "$T/t3.aimt" "$T/data/odd-sizes"
$PY "$REF" train "$T/t3.aimt" "$T/log3.tsv" 224 14 3 16

# determinism: thread count and batch size do not change a byte of the samples
"$BIN/aim-patchify" -q $A --threads 1 -o "$T/b.aimt" "$T/data/jpeg" "$T/data/png" "$T/data/odd-sizes"
cmp "$T/a.aimt" "$T/b.aimt"
"$BIN/aim-patchify" -q $A --threads 2 --batch 5 -o "$T/c.aimt" "$T/data/jpeg" "$T/data/png" "$T/data/odd-sizes"
$PY "$REF" same "$T/a.aimt" "$T/c.aimt"
"$BIN/aim-patchify" -q --transform train --epochs 2 --shuffle --seed 8 --level 0 -o "$T/d.aimt" "$T/data/jpeg" "$T/data/png" "$T/data/odd-sizes"
if cmp -s "$T/a.aimt" "$T/d.aimt"; then echo "another seed gave the same bytes"; exit 1; fi
$PY "$REF" epochs "$T/a.aimt" 2
echo "determinism: ok"
