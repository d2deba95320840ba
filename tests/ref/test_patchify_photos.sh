#!/bin/sh
# aim-patchify --transform val on real photographs (progressive JPEGs of
# several megapixels from the Debian package lomiri-wallpapers-16.04)
# against Pillow + torchvision: zero differing pixels.
set -eu
PY=${PYTHON:-/usr/bin/python3}
REF="$AIM_TOP/tests/ref/patchify_ref.py"
$PY -c 'import torchvision, PIL, zstandard' 2>/dev/null || { echo "torchvision/Pillow/zstandard not installed"; exit 77; }
D=/usr/share/backgrounds
for f in Wine_by_Jakkub_Mede.jpg friends_by_Aitzol_Berasategi.jpg Picture_0B_by_freespace.jpg; do
	[ -f "$D/$f" ] || { echo "photographs not installed (apt-get install lomiri-wallpapers-16.04)"; exit 77; }
done
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$BIN/aim-patchify" -q --threads 2 -o "$T/p.aimt" "$D/Wine_by_Jakkub_Mede.jpg" \
	"$D/friends_by_Aitzol_Berasategi.jpg" "$D/Picture_0B_by_freespace.jpg"
"$BIN/aim-patchify" -q --threads 2 --channels 1 --size 112 --patch 16 -o "$T/l.aimt" \
	"$D/Wine_by_Jakkub_Mede.jpg" "$D/friends_by_Aitzol_Berasategi.jpg"
$PY "$REF" val "$T/p.aimt" 224 256 14 3 "$T/l.aimt" 112 128 16 1
