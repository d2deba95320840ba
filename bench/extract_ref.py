#!/usr/bin/python3
"""Helpers of bench/extract.sh.

  extract_ref.py gen DIR --dim D --depth N --heads H --images N
      random F32 model (model.safetensors with aim.config, 224 px, patch 14)
      and a patches stream of N images (F32, already normalised)
  extract_ref.py torch DIR --threads T --batch B [--dtype fp32|bf16]
      PyTorch forward of the same weights on the same images, B at a time
      (the trunk of tests/ref/aim_ref.py in fp32), as aim-extract --batch B
      runs them; prints images/s, wall and CPU seconds of one timed run
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import aim_ref  # noqa: E402

PATCH, IMG = 14, 224


def names(dim, depth):
    Hm = 4 * dim
    out = [("preprocessor.patchifier.proj.weight", (dim, 3, PATCH, PATCH), 1 / math.sqrt(3 * PATCH * PATCH)),
           ("preprocessor.patchifier.proj.bias", (dim,), 0.02),
           ("preprocessor.patchifier.norm.weight", (dim,), -1),
           ("preprocessor.patchifier.norm.bias", (dim,), 0.02)]
    for i in range(depth):
        p = "trunk.blocks.%d." % i
        out += [(p + "norm_1.weight", (dim,), -1), (p + "norm_1.bias", (dim,), 0.02),
                (p + "attn.qkv.weight", (3 * dim, dim), 1 / math.sqrt(dim)),
                (p + "attn.proj.weight", (dim, dim), 0.5 / math.sqrt(dim)),
                (p + "norm_2.weight", (dim,), -1), (p + "norm_2.bias", (dim,), 0.02),
                (p + "mlp.fc1.weight", (Hm, dim), 1 / math.sqrt(dim)),
                (p + "mlp.fc2.weight", (dim, Hm), 0.5 / math.sqrt(Hm))]
    out += [("trunk.post_trunk_norm.weight", (dim,), -1), ("trunk.post_trunk_norm.bias", (dim,), 0.02)]
    return out


def gen(a):
    os.makedirs(a.dir, exist_ok=True)
    rng = np.random.default_rng(0)
    cfg = {"img_size": IMG, "patch_size": PATCH, "embed_dim": a.dim, "num_blocks": a.depth,
           "num_heads": a.heads, "num_channels": 3, "probe_layers": 1, "num_classes": 1000}
    spec = names(a.dim, a.depth)
    header, off = {}, 0
    for n, shape, _ in spec:
        size = 4 * int(np.prod(shape))
        header[n] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + size]}
        off += size
    header["__metadata__"] = {"aim.config": json.dumps(cfg)}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(a.dir, "model.safetensors"), "wb") as f:  # streamed: no 2nd copy
        f.write(struct.pack("<Q", len(h)) + h)
        for n, shape, scale in spec:
            if scale < 0:
                arr = (1 + 0.02 * rng.standard_normal(shape, dtype=np.float32))
            else:
                arr = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
            f.write(arr.astype(np.float32).tobytes())
    g = IMG // PATCH
    img = rng.standard_normal((a.images, 3, IMG, IMG), dtype=np.float32)
    np.save(os.path.join(a.dir, "images.npy"), img)
    meta = {"aim.patch": str(PATCH), "aim.grid": json.dumps([g, g]), "aim.channels": "3"}
    aim_ref.write_stream(os.path.join(a.dir, "patches.aimt"),
                         [({"patches": np.ascontiguousarray(aim_ref.images_to_patches(img, PATCH)),
                            "id": np.arange(a.images, dtype=np.int64)}, meta)])


def run_torch(a):
    aim_ref.need_torch()
    import torch
    torch.set_num_threads(a.threads)
    t, m = aim_ref.read_st(os.path.join(a.dir, "model.safetensors"))
    cfg = json.loads(m["aim.config"])
    # --dtype bf16: what a user gets from model.bfloat16() and a bf16 input
    # (torch.autocast fails on this model in torch 1.13); cast before timing
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    sd = {k: torch.from_numpy(v).to(dtype) for k, v in t.items()}
    del t
    img = torch.from_numpy(np.load(os.path.join(a.dir, "images.npy"))).to(dtype)
    with torch.no_grad():
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, img.shape[0], a.batch):
            aim_ref.trunk(sd, cfg, img[i:i + a.batch], dtype=dtype)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
    print("%.4f %.3f %.3f" % (img.shape[0] / dt, dt, dc))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    for k in ("dim", "depth", "heads", "images"):
        g.add_argument("--" + k, type=int, required=True)
    t = sub.add_parser("torch")
    t.add_argument("dir")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--batch", type=int, required=True)
    t.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    a = ap.parse_args()
    (gen if a.cmd == "gen" else run_torch)(a)


if __name__ == "__main__":
    main()
