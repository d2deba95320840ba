#!/bin/sh
# The EXAMPLES of man/aim-patchify.1, run on a small generated tree
# (ImageFolder layout, 28x28 gray PNGs; a tar shard of the same images).
set -eu
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
$PY - <<'PYEOF'
import io, os, struct, tarfile, zlib
def chunk(k, b): return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
def png(w, h, seed):
    raw = b"".join(b"\0" + bytes((x * 7 + y * 3 + seed) % 256 for x in range(w)) for y in range(h))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
with tarfile.open("shard-0.tar", "w") as tf:
    for c in ("coat", "shirt", "sneaker"):
        for split in ("train", "val"):
            os.makedirs(f"fmnist/{split}/{c}", exist_ok=True)
            os.makedirs(f"imagenet/{split}/{c}", exist_ok=True)
        for i in range(3):
            data = png(28, 28, i + len(c))
            for split in ("train", "val"):
                open(f"fmnist/{split}/{c}/{i}.png", "wb").write(data)
                open(f"imagenet/{split}/{c}/{i}.png", "wb").write(data)
            for name, b in ((f"{c}{i}.png", data), (f"{c}{i}.cls", b"1")):
                ti = tarfile.TarInfo(name); ti.size = len(b); tf.addfile(ti, io.BytesIO(b))
os.makedirs("photos/2024", exist_ok=True)
open("photos/2024/a.jpg", "wb").write(b"not really a jpeg")
PYEOF
B=$BIN
$B/aim-patchify -q -o val.aimt imagenet/val
[ -s val.aimt ]
$B/aim-patchify -q --transform train --epochs 3 --shuffle imagenet/train | cat >train.aimt
[ -s train.aimt ]
$B/aim-patchify -q --channels 1 --size 28 --resize 28 --patch 7 \
	--mean 0.286 --std 0.353 -o fmnist.aimt fmnist/train
[ -s fmnist.aimt ]
$B/aim-patchify -q --shard 0/2 --size 28 --patch 14 shard-*.tar >part0.aimt
[ -s part0.aimt ]
# the find example: a file that is not a JPEG is reported and skipped
if find photos -name '*.jpg' | $B/aim-patchify -q --size 448 >photos.aimt 2>err; then
	echo "FAIL: a bad image should give exit 1"; exit 1
fi
grep -q "photos/2024/a.jpg: unknown image format" err
echo ok
