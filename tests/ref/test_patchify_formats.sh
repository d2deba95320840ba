#!/bin/sh
# aim-patchify on every mode Pillow reads in WebP, GIF, BMP and PPM/PGM/PBM
# (written by Pillow, and by hand where Pillow does not write them):
# pixels equal to Pillow's convert("RGB")/convert("L") + torchvision's
# transform, and on edge cases and damaged copies (cut short, a byte
# flipped) exactly Pillow's verdicts: what it decodes is written, what it
# refuses is named and skipped.
set -eu
PY=${PYTHON:-/usr/bin/python3}
REF="$AIM_TOP/tests/ref/patchify_ref.py"
$PY -c 'import torchvision, PIL, zstandard' 2>/dev/null || { echo "torchvision/Pillow/zstandard not installed"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PY "$REF" gen-formats "$T/f"
# .gif and .pbm are not ImageFolder extensions: the files are listed
find "$T/f" -maxdepth 1 -type f | sort >"$T/list"
"$BIN/aim-patchify" -q --threads 2 -o "$T/rgb.aimt" <"$T/list"
"$BIN/aim-patchify" -q --threads 2 --channels 1 --size 28 --resize 32 --patch 7 -o "$T/l.aimt" <"$T/list"
$PY "$REF" val "$T/rgb.aimt" 224 256 14 3 "$T/l.aimt" 28 32 7 1

# edge cases, and damaged copies of one file of each kind
mkdir "$T/src"
for f in pil_rgb.ppm raw_maxval300.ppm plain.pgm plain.pbm raw_odd.pbm pil_p5_interlaced.gif \
	hand_offset_trns.gif pil_anim.gif hand_extensions.gif lossy_rgb.webp lossless_rgba.webp anim.webp \
	pil_rgb.bmp p4.bmp rle8.bmp rle4.bmp rle8_delta.bmp rgb16_565_bitfields.bmp p8_topdown.bmp; do
	cp "$T/f/$f" "$T/src/"
done
$PY "$REF" cut "$T/src" "$T/cut"
ls "$T"/cut/* "$T"/f/edge/* >"$T/damaged"
set +e
"$BIN/aim-patchify" --threads 2 --size 56 --patch 14 -o "$T/d.aimt" <"$T/damaged" 2>"$T/err"
rc=$?
set -e
[ $rc -eq 1 ] || { echo "exit $rc, want 1 (some damaged files must be refused)"; exit 1; }
$PY "$REF" verdicts "$T/d.aimt" "$T/err" $(cat "$T/damaged")
$PY "$REF" val "$T/d.aimt" 56 64 14 3
