#!/bin/sh
# aim-patchify with bad inputs: each truncated, corrupt, unknown, unsupported,
# empty, missing or oversized image is named on stderr with its reason and
# skipped; the good images are all written; a summary counts both; exit 1.
# --strict stops at the first bad image and leaves no output file.
# A reader that closes the pipe early ends the tool quietly with status 0.
set -u
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; [ -f "$T/err" ] && sed 's/^/  stderr: /' "$T/err"; exit 1; }

# Images written with the standard library only: a valid gray PNG of w x h.
$PY - "$T" <<'PYEOF'
import struct, sys, zlib
d = sys.argv[1]
def chunk(k, b): return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
def png(w, h, seed):
    raw = b"".join(b"\0" + bytes((x * 7 + y * 3 + seed) % 256 for x in range(w)) for y in range(h))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
for i in range(3):
    open(f"{d}/good{i}.png", "wb").write(png(40 + i, 30, i))
p = png(64, 48, 9)
open(f"{d}/truncated.png", "wb").write(p[: len(p) // 2])
c = bytearray(p); c[60] ^= 0xFF  # inside IDAT: corrupt zlib data (Pillow ignores IDAT CRCs, not this)
open(f"{d}/corrupt.png", "wb").write(bytes(c))
open(f"{d}/big.png", "wb").write(png(2000, 1000, 1))
open(f"{d}/notimage.jpg", "wb").write(b"hello, this is text\n")
open(f"{d}/image.bmp", "wb").write(b"BM" + bytes(60))
open(f"{d}/image.tif", "wb").write(b"II*\0" + bytes(60))
open(f"{d}/empty.png", "wb").close()
# a JPEG cut short: the smallest valid baseline JPEG header, then nothing
open(f"{d}/truncated.jpg", "wb").write(bytes.fromhex(
 "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432"
 "ffc0000b080010001001011100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffda0008010100003f00"))
PYEOF
count() { # samples in an uncompressed stream (standard library only)
	$PY -c '
import json, struct, sys
d = open(sys.argv[1], "rb").read(); pos = n = 0
while pos < len(d):
    (h,) = struct.unpack_from("<Q", d, pos); hdr = json.loads(d[pos + 8:pos + 8 + h])
    n += hdr["patches"]["shape"][0]
    pos += 8 + h + max(v["data_offsets"][1] for k, v in hdr.items() if k != "__metadata__")
print(n)' "$1"
}

printf '%s\n' "$T/good0.png" "$T/truncated.png" "$T/corrupt.png" "$T/big.png" "$T/good1.png" \
	"$T/notimage.jpg" "$T/image.bmp" "$T/image.tif" "$T/empty.png" "$T/missing.png" "$T/truncated.jpg" "$T/good2.png" >"$T/list"
"$BIN/aim-patchify" --size 28 --patch 14 --level 0 --max-pixels 1000000 -o "$T/out.aimt" <"$T/list" 2>"$T/err"
rc=$?
[ $rc -eq 1 ] || fail "exit $rc, want 1"
for f in truncated.png corrupt.png big.png notimage.jpg image.bmp image.tif empty.png missing.png truncated.jpg; do
	grep -q "^aim-patchify: $T/$f: " "$T/err" || fail "$f not named on stderr"
done
grep -q "truncated.jpg: JPEG: file is truncated" "$T/err" || fail "truncated JPEG reason"
grep -q "big.png: .*exceeds the limit" "$T/err" || fail "pixel limit reason"
grep -q "image.bmp: BMP: unsupported header type (0)" "$T/err" || fail "BMP reason"
grep -q "image.tif: TIFF: cannot read the first directory" "$T/err" || fail "TIFF reason"
grep -q "notimage.jpg: unknown image format" "$T/err" || fail "unknown format reason"
grep -q "missing.png: No such file or directory" "$T/err" || fail "missing file reason"
grep -q "3 images written, 9 skipped" "$T/err" || fail "summary"
[ "$(count "$T/out.aimt")" = 3 ] || fail "want 3 samples in the output"

# --strict: stop at the first, no output file
"$BIN/aim-patchify" --strict --size 28 --patch 14 -o "$T/strict.aimt" <"$T/list" 2>"$T/err"
rc=$?
[ $rc -eq 1 ] || fail "--strict exit $rc, want 1"
[ ! -e "$T/strict.aimt" ] || fail "--strict left an output file"
grep -q "truncated.png" "$T/err" || fail "--strict did not name the bad file"
if grep -q "corrupt.png" "$T/err"; then fail "--strict went on after the first bad image"; fi

# A WebP whose VP8X header declares a 64,602 x 28,260 canvas (7.3 GB of
# RGBA; found by the image fuzzer) is refused by the pixel limit before any
# canvas is allocated: under a 4 GB address-space limit an allocation made
# first fails ("could not create decoder object") instead. (Not under ASan,
# whose shadow memory needs more address space than that.)
bomb="$AIM_TOP/tests/fuzz/corpus/image/webp-canvas-7gb.webp"
if [ "${SAN:-0}" = 1 ]; then
	"$BIN/aim-patchify" -q -o "$T/bomb.aimt" "$bomb" 2>"$T/err"
else
	(ulimit -v 4000000; "$BIN/aim-patchify" -q -o "$T/bomb.aimt" "$bomb" 2>"$T/err")
fi
grep -q "WebP: 64602x28260 = 1825652520 pixels exceeds the limit" "$T/err" || fail "WebP canvas bomb"

# a closed pipe ends the tool quietly
{ "$BIN/aim-patchify" --size 28 --patch 14 --level 0 --epochs 200 "$T/good0.png" "$T/good1.png" 2>"$T/err"; echo $? >"$T/rc"; } | head -c 100 >/dev/null
[ "$(cat "$T/rc")" = 0 ] || fail "closed pipe: exit $(cat "$T/rc"), want 0"
[ ! -s "$T/err" ] || fail "closed pipe: stderr not empty"
echo "ok"
