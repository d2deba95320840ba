#!/usr/bin/env python3
"""Writes the small stream fixtures in tests/data/stream/ with numpy and
zstandard only, independently of aim's own writer (the format of DESIGN.md:
u64 LE header length, JSON header, data; each record one zstd frame with
the content checksum)."""
import json, os, struct, sys
import numpy as np, zstandard

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "stream")
os.makedirs(out, exist_ok=True)
DT = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("uint8"): "U8",
      np.dtype("int64"): "I64", np.dtype("int32"): "I32"}

def record(tensors, meta=None, header_override=None):
    hdr, data, off = {}, b"", 0
    if meta:
        hdr["__metadata__"] = meta
    for name, arr in tensors:
        b = np.ascontiguousarray(arr).tobytes()
        hdr[name] = {"dtype": DT[arr.dtype], "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        data += b
    if header_override:
        header_override(hdr)
    h = json.dumps(hdr).encode()
    return struct.pack("<Q", len(h)) + h + data

rng = np.random.default_rng(0)
def sample_record(i, b=2):
    return record([("patches", rng.integers(0, 256, (b, 4, 12), dtype=np.uint8)),
                   ("label", np.arange(b, dtype=np.int64) + i), ("id", np.arange(b, dtype=np.int64) + 2 * i)],
                  {"aim.names": json.dumps([f"img{i}_{k}.png" for k in range(b)]), "aim.patch": "2",
                   "aim.grid": "[2, 2]", "aim.channels": "3", "aim.classes": '["cat", "dog", "eel", "fox"]'})

z = zstandard.ZstdCompressor(write_checksum=True)
good = [sample_record(i) for i in range(3)]
open(f"{out}/good.aimt", "wb").write(b"".join(z.compress(r) for r in good))
open(f"{out}/raw.aimt", "wb").write(b"".join(good))
frames = [z.compress(r) for r in good]
open(f"{out}/trunc.aimt", "wb").write(b"".join(frames)[:-9])
bad = bytearray(frames[2]); bad[-6] ^= 0xFF  # inside the payload / checksum of the last frame
open(f"{out}/badsum.aimt", "wb").write(frames[0] + frames[1] + bytes(bad))
absurd = struct.pack("<Q", 1 << 62) + b"{}"
open(f"{out}/absurd.aimt", "wb").write(frames[0] + z.compress(absurd))
def wrong_size(h): h["label"]["shape"] = [3]
open(f"{out}/shape.aimt", "wb").write(frames[0] + z.compress(record([("label", np.arange(2, dtype=np.int64))], None, wrong_size)))
def oob(h): h["label"]["data_offsets"] = [0, 4096]; h["label"]["shape"] = [512]
open(f"{out}/offsets.aimt", "wb").write(z.compress(record([("label", np.arange(2, dtype=np.int64))], None, oob)))
open(f"{out}/garbage.aimt", "wb").write(b"this is not a tensor stream\n")
