#!/usr/bin/env python3
"""Unpacks Fashion-MNIST (Debian's dataset-fashion-mnist, IDX files) into two
ImageFolder trees of 28x28 grayscale PNGs, OUT/train/<class>/NNNNN.png and
OUT/test/<class>/NNNNN.png, which aim-patchify reads with labels.
Standard library only (gzip, struct, zlib)."""
import gzip, os, struct, sys, zlib

SRC = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
CLASSES = ["0-tshirt", "1-trouser", "2-pullover", "3-dress", "4-coat",
           "5-sandal", "6-shirt", "7-sneaker", "8-bag", "9-boot"]

def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]

def png(w, h, pixels):
    raw = b"".join(b"\0" + pixels[y * w:(y + 1) * w] for y in range(h))
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))

def unpack(split, images, labels, out, limit):
    (n, h, w), pix = idx(f"{SRC}/{images}")
    (_,), lab = idx(f"{SRC}/{labels}")
    n = min(n, limit)
    for c in CLASSES:
        os.makedirs(f"{out}/{split}/{c}", exist_ok=True)
    for i in range(n):
        path = f"{out}/{split}/{CLASSES[lab[i]]}/{i:05d}.png"
        with open(path, "wb") as f:
            f.write(png(w, h, pix[i * h * w:(i + 1) * h * w]))
    return n

if __name__ == "__main__":
    out = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 30
    a = unpack("train", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", out, limit)
    b = unpack("test", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", out, limit)
    print(f"fmnist-images: {a} training and {b} test images under {out}", file=sys.stderr)
