#!/usr/bin/env python3
"""ImageNet-validation-like JPEGs for the end-to-end benchmark.

    make_jpegs.py OUT N [WORKERS [CLASSES]]

OUT/cNNN/NNNNNNNN.jpg: N images over CLASSES (default min(N, 1000)) class folders (an
ImageFolder tree), sizes as ImageNet's validation set mostly has them
(500x375, 375x500, 500x333, 333x500 and a few others), quality 90, smooth
random content with edges so that the JPEGs are of realistic size."""
import os
import sys
from multiprocessing import Pool

import numpy as np
from PIL import Image

SIZES = [(500, 375), (375, 500), (500, 333), (333, 500), (500, 400), (500, 500), (640, 480)]


def one(args):
    out, i, classes = args
    rng = np.random.default_rng(i)
    w, h = SIZES[i % len(SIZES)]
    low = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((w, h), Image.BICUBIC)
    a = np.asarray(img).copy()
    a[rng.integers(0, h, 40)] //= 2  # some hard edges
    d = os.path.join(out, "c%03d" % (i % classes))
    Image.fromarray(a).save(os.path.join(d, "%08d.jpg" % i), quality=90)


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
    classes = int(sys.argv[4]) if len(sys.argv) > 4 else min(n, 1000)
    assert 1 <= classes <= n, "need at least one image per class"
    for c in range(classes):
        os.makedirs(os.path.join(out, "c%03d" % c), exist_ok=True)
    with Pool(workers) as p:
        p.map(one, [(out, i, classes) for i in range(n)], chunksize=64)


if __name__ == "__main__":
    main()
