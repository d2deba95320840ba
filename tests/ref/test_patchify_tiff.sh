#!/bin/sh
# aim-patchify on TIFF: every mode Pillow reads, in every compression Pillow
# writes (none, LZW, deflate, PackBits, JPEG, CCITT G3/G4, zstd, LZMA,
# WebP), written by Pillow and by hand (big-endian, tiled, separate planes,
# fill order 2, orientations, multi-page: tests/ref/tiff_ref.py). Pixels
# equal Pillow's convert("RGB")/convert("L") + torchvision's transform;
# damaged copies and edge cases get exactly Pillow's verdicts; libtiff
# itself prints nothing (every line on stderr is aim-patchify's).
#
# Not compared, because the verdicts differ by design (aim-patchify(1)):
# LAB (Pillow converts it through LittleCMS; refused here, checked below),
# and uncompressed files cut inside a directory stored after the image data
# (Pillow's own parser drops the tags it cannot read and may still decode
# the pixels; libtiff refuses the directory): the copies cut here are of
# files whose directory comes first or whose data is compressed.
set -eu
PY=${PYTHON:-/usr/bin/python3}
REF="$AIM_TOP/tests/ref/patchify_ref.py"
$PY -c 'import torchvision, PIL, zstandard' 2>/dev/null || { echo "torchvision/Pillow/zstandard not installed"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
$PY "$AIM_TOP/tests/ref/tiff_ref.py" gen "$T/t"
find "$T/t" -maxdepth 1 -name '*.tif' ! -name lab.tif | sort >"$T/list"
"$BIN/aim-patchify" -q --threads 2 -o "$T/rgb.aimt" <"$T/list" 2>"$T/err" || { cat "$T/err"; fail "a valid TIFF was refused"; }
"$BIN/aim-patchify" -q --threads 2 --channels 1 --size 28 --resize 32 --patch 7 -o "$T/l.aimt" <"$T/list"
$PY "$REF" val "$T/rgb.aimt" 224 256 14 3 "$T/l.aimt" 28 32 7 1

# damaged copies (cut short, a byte flipped) and the edge cases
mkdir "$T/src"
for f in pil_RGB_raw pil_L_raw pil_I16_raw pil_1_raw pil_RGB_tiff_lzw pil_L_tiff_deflate pil_1_group4 \
	pil_1_group3 pil_RGB_jpeg pil_YCbCr_jpeg pil_YCbCr_tiff_lzw pil_CMYK_packbits pil_I16_zstd pil_F_lzma \
	pil_RGBA_webp pil_multipage pil_RGB_strips_lzw pil_P_raw pil_orientation_6 hand_tiled_RGB_deflate \
	hand_planar_RGB_deflate hand_RGB16_mm_packbits hand_I32S_mm_deflate; do
	cp "$T/t/$f.tif" "$T/src/"
done
$PY "$REF" cut "$T/src" "$T/cut"
ls "$T"/cut/* "$T"/t/edge/* >"$T/damaged"
set +e
"$BIN/aim-patchify" --threads 2 --size 56 --patch 14 -o "$T/d.aimt" <"$T/damaged" 2>"$T/err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "exit $rc, want 1 (some damaged files must be refused)"
if grep -v '^aim-patchify: ' "$T/err"; then fail "lines on stderr that are not aim-patchify's (libtiff's own?)"; fi
$PY "$REF" verdicts "$T/d.aimt" "$T/err" $(cat "$T/damaged")
$PY "$REF" val "$T/d.aimt" 56 64 14 3

# LAB is refused with its reason; the pixel limit counts the TIFF's size
set +e
"$BIN/aim-patchify" --size 28 --patch 14 -o "$T/x.aimt" "$T/t/lab.tif" 2>"$T/err"; rc=$?
set -e
[ $rc -eq 1 ] || fail "LAB: exit $rc, want 1"
grep -q "^aim-patchify: $T/t/lab.tif: TIFF: mode LAB is not converted" "$T/err" || fail "LAB reason: $(cat "$T/err")"
set +e
"$BIN/aim-patchify" --size 28 --patch 14 --max-pixels 1000 -o "$T/x.aimt" "$T/t/pil_RGB_strips_lzw.tif" 2>"$T/err"; rc=$?
set -e
[ $rc -eq 1 ] || fail "limit: exit $rc, want 1"
grep -q "pil_RGB_strips_lzw.tif: TIFF: 257x301 = 77357 pixels exceeds the limit of 1000" "$T/err" || fail "limit reason: $(cat "$T/err")"
echo "ok"
