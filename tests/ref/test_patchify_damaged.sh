#!/bin/sh
# Damaged images (cut short anywhere, even by one byte; a byte flipped):
# aim-patchify writes exactly those Pillow decodes, with Pillow's pixels,
# and names and skips exactly those Pillow refuses (Pillow calls a JPEG
# truncated when the decoder runs out of data, libjpeg's fake EOI aside).
set -eu
PY=${PYTHON:-/usr/bin/python3}
REF="$AIM_TOP/tests/ref/patchify_ref.py"
$PY -c 'import torchvision, PIL, zstandard' 2>/dev/null || { echo "torchvision/Pillow/zstandard not installed"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PY "$REF" gen "$T/data"
mkdir "$T/src"
cp "$T/data/jpeg/progressive.jpg" "$T/data/jpeg/gray.jpg" "$T/data/jpeg/cmyk.jpg" \
	"$T/data/png/p.png" "$T/data/png-extra/interlaced_rgb.png" "$T/data/png/gray16.png" "$T/src/"
$PY "$REF" cut "$T/src" "$T/cut"
ls "$T"/cut/* >"$T/list"
set +e
"$BIN/aim-patchify" --threads 2 --size 56 --patch 14 -o "$T/out.aimt" <"$T/list" 2>"$T/err"
rc=$?
set -e
[ $rc -eq 1 ] || { echo "exit $rc, want 1 (some damaged files must be refused)"; exit 1; }
$PY "$REF" verdicts "$T/out.aimt" "$T/err" $(cat "$T/list")
$PY "$REF" val "$T/out.aimt" 56 64 14 3

# PNGs and JPEGs damaged as real-world corpora are: bad CRCs before, in and
# after the image data, cut or unknown chunks, zlib streams ending early,
# late or never, text past Pillow's limits, broken APNG sequences, markers
# after the last JPEG scan: again exactly Pillow's verdicts and pixels.
$PY "$REF" gen-damaged "$T/dmg"
ls "$T"/dmg/* >"$T/list2"
set +e
"$BIN/aim-patchify" --threads 2 --size 28 --resize 32 --patch 7 -o "$T/dmg.aimt" <"$T/list2" 2>"$T/err2"
rc=$?
set -e
[ $rc -eq 1 ] || { echo "exit $rc, want 1 (some damaged files must be refused)"; exit 1; }
$PY "$REF" verdicts "$T/dmg.aimt" "$T/err2" $(cat "$T/list2") 2>/dev/null
$PY "$REF" val "$T/dmg.aimt" 28 32 7 3
