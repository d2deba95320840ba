#!/usr/bin/python3
"""PyTorch reference of the AIM v1 trunk, written for the tests from the
published definition (apple/ml-aim aim-v1/aim/v1/torch/layers.py and
models.py), independent of the C code.

  - patch embedding: a stride-p Conv2d on the IMAGE (the test cuts the
    patches itself, so the patch order is checked too), LayerNorm eps 1e-6;
  - fixed 2-D sin-cos positions built as SinCosPosEmbed does (meshgrid
    indexing="xy": the column index encoded first);
  - pre-norm blocks: x + proj(attn(LN1 x)), x + fc2(GELU(fc1(LN2 x))), no
    qkv bias, proj/MLP biases optional (use_bias), exact GELU;
  - masks: bidirectional, causal, prefix-causal (tril OR key < prefix);
  - post-trunk LayerNorm; the attentive probe head's pooling
    (AttentionPoolingClassifier without its final linear).

Sub-commands (see --help of each):
  gen DIR ...       random model in every file form + a patches stream + the
                    reference outputs (ref.safetensors)
  compare A B ...   features stream vs reference tensor, error relative to scale
                    (or, with --cosine, the least per-token cosine similarity)
  same A B          two features streams must be byte-identical in features
  train-fixture OUT a model + expected masked outputs and gradients (C unit test)
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

torch = F = None  # imported by need_torch(): comparing needs numpy only


def need_torch():
    global torch, F
    import torch as _torch
    import torch.nn.functional as _F
    torch, F = _torch, _F

NP2ST = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.uint8): "U8",
         np.dtype(np.int64): "I64", np.dtype(np.int32): "I32"}
ST2NP = {v: k for k, v in NP2ST.items()}


# ---- files -------------------------------------------------------------------

def st_bytes(tensors, meta=None):
    """One safetensors blob; values: numpy arrays, or ("BF16", uint16 array)."""
    header, chunks, off = {}, [], 0
    for name, arr in tensors.items():
        if isinstance(arr, tuple):
            dt, arr = arr
        else:
            dt = NP2ST[arr.dtype]
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(chunks)


def st_parse(buf, off=0):
    (n,) = struct.unpack_from("<Q", buf, off)
    header = json.loads(bytes(buf[off + 8:off + 8 + n]).decode())
    base = off + 8 + n
    meta = header.pop("__metadata__", {})
    out, end = {}, 0
    for name, e in header.items():
        a, b = e["data_offsets"]
        end = max(end, b)
        raw = bytes(buf[base + a:base + b])
        if e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, ST2NP[e["dtype"]])
        out[name] = arr.reshape(e["shape"]).copy()
    return out, meta, base + end


def read_st(path):
    with open(path, "rb") as f:
        t, m, _ = st_parse(f.read())
    return t, m


def read_stream(path):
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard
        out = bytearray()
        with zstandard.ZstdDecompressor().stream_reader(buf, read_across_frames=True) as r:
            while True:
                c = r.read(1 << 20)
                if not c:
                    break
                out += c
        buf = bytes(out)
    off, recs = 0, []
    while off < len(buf):
        t, m, off = st_parse(buf, off)
        recs.append((t, m))
    return recs


def write_stream(path, records):
    import zstandard
    with open(path, "wb") as f:
        for tensors, meta in records:
            f.write(zstandard.ZstdCompressor(write_checksum=True).compress(st_bytes(tensors, meta)))


def bf16(a):
    """float32 -> bf16 bits, round to nearest even."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


# ---- the model ---------------------------------------------------------------

def sincos_1d(dim, pos):
    omega = torch.arange(dim // 2, dtype=torch.float32) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = pos.reshape(-1)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d(rows, cols, dim):
    gh = torch.arange(rows, dtype=torch.float32)
    gw = torch.arange(cols, dtype=torch.float32)
    g = torch.stack(torch.meshgrid(gw, gh, indexing="xy"), dim=0).reshape(2, 1, rows, cols)
    return torch.cat([sincos_1d(dim // 2, g[0]), sincos_1d(dim // 2, g[1])], dim=1)


def mask_bias(kind, K, prefix, B, dtype):
    """Additive mask [B, 1, K, K] (0 visible, -inf hidden) or None."""
    if kind == "none":
        return None
    vis = torch.ones(K, K, dtype=torch.bool).tril().expand(B, K, K).clone()
    if kind == "prefix":
        keys = torch.arange(K)[None, :] < torch.tensor(prefix)[:, None]  # [B, K]
        vis |= keys[:, None, :]
    bias = torch.zeros(B, K, K, dtype=dtype)
    bias[~vis] = float("-inf")
    return bias[:, None]


def ln(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-6)


def trunk(sd, cfg, images, mask="none", prefix=None, dtype=None):
    """images [B, C, H, W] -> (list of block outputs [B, K, D], post-norm of the last);
    computed in float64 unless dtype says otherwise."""
    dtype = dtype or torch.float64
    T = lambda n: sd[n].to(dtype)
    p, D, H = cfg["patch_size"], cfg["embed_dim"], cfg["num_heads"]
    x = F.conv2d(images.to(dtype), T("preprocessor.patchifier.proj.weight"),
                 T("preprocessor.patchifier.proj.bias"), stride=p)
    B, _, rows, cols = x.shape
    x = x.flatten(2).transpose(1, 2)
    x = ln(x, T("preprocessor.patchifier.norm.weight"), T("preprocessor.patchifier.norm.bias"))
    x = x + sincos_2d(rows, cols, D).to(dtype)[None]
    K, hd = rows * cols, D // H
    bias = mask_bias(mask, K, prefix, B, dtype)
    outs = []
    opt = lambda n: T(n) if n in sd else None
    for i in range(cfg["num_blocks"]):
        pre = "trunk.blocks.%d." % i
        h = ln(x, T(pre + "norm_1.weight"), T(pre + "norm_1.bias"))
        qkv = F.linear(h, T(pre + "attn.qkv.weight")).reshape(B, K, 3, H, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        s = q @ k.transpose(-2, -1) / math.sqrt(hd)
        if bias is not None:
            s = s + bias
        a = torch.softmax(s, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, K, D)
        x = x + F.linear(a, T(pre + "attn.proj.weight"), opt(pre + "attn.proj.bias"))
        h = ln(x, T(pre + "norm_2.weight"), T(pre + "norm_2.bias"))
        h = F.gelu(F.linear(h, T(pre + "mlp.fc1.weight"), opt(pre + "mlp.fc1.bias")))
        x = x + F.linear(h, T(pre + "mlp.fc2.weight"), opt(pre + "mlp.fc2.bias"))
        outs.append(x)
    normed = ln(x, T("trunk.post_trunk_norm.weight"), T("trunk.post_trunk_norm.bias"))
    return outs, normed


def head_pool(sd, x, heads, dtype=None):
    """AttentionPoolingClassifier up to (not including) its linear layer."""
    dtype = dtype or torch.float64
    T = lambda n: sd[n].to(dtype)
    B, N, C = x.shape
    x = (x - T("head.bn.running_mean")) / torch.sqrt(T("head.bn.running_var") + 1e-6)
    Q = sd["head.cls_token"].shape[1]
    q = T("head.cls_token").expand(B, -1, -1).reshape(B, Q, heads, C // heads).permute(0, 2, 1, 3)
    k = F.linear(x, T("head.k.weight")).reshape(B, N, heads, C // heads).permute(0, 2, 1, 3)
    v = F.linear(x, T("head.v.weight")).reshape(B, N, heads, C // heads).permute(0, 2, 1, 3)
    a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(C // heads), dim=-1) @ v
    return a.transpose(1, 2).reshape(B, Q, C).mean(dim=1)


def random_model(cfg, bias, seed, head_classes=5):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: (torch.randn(*s, generator=g) * scale).float()
    D, C, p, n = cfg["embed_dim"], cfg["num_channels"], cfg["patch_size"], cfg["num_blocks"]
    Hm = cfg.get("mlp_hidden_dim", 4 * D)
    sd = {}
    sd["preprocessor.patchifier.proj.weight"] = r(D, C, p, p, scale=1 / math.sqrt(C * p * p))
    sd["preprocessor.patchifier.proj.bias"] = r(D, scale=0.1)
    sd["preprocessor.patchifier.norm.weight"] = 1 + r(D, scale=0.1)
    sd["preprocessor.patchifier.norm.bias"] = r(D, scale=0.1)
    for i in range(n):
        pre = "trunk.blocks.%d." % i
        sd[pre + "norm_1.weight"] = 1 + r(D, scale=0.1)
        sd[pre + "norm_1.bias"] = r(D, scale=0.1)
        sd[pre + "attn.qkv.weight"] = r(3 * D, D, scale=1 / math.sqrt(D))
        sd[pre + "attn.proj.weight"] = r(D, D, scale=0.5 / math.sqrt(D))
        if bias:
            sd[pre + "attn.proj.bias"] = r(D, scale=0.1)
        sd[pre + "norm_2.weight"] = 1 + r(D, scale=0.1)
        sd[pre + "norm_2.bias"] = r(D, scale=0.1)
        sd[pre + "mlp.fc1.weight"] = r(Hm, D, scale=1 / math.sqrt(D))
        if bias:
            sd[pre + "mlp.fc1.bias"] = r(Hm, scale=0.1)
        sd[pre + "mlp.fc2.weight"] = r(D, Hm, scale=0.5 / math.sqrt(Hm))
        if bias:
            sd[pre + "mlp.fc2.bias"] = r(D, scale=0.1)
    sd["trunk.post_trunk_norm.weight"] = 1 + r(D, scale=0.1)
    sd["trunk.post_trunk_norm.bias"] = r(D, scale=0.1)
    head = {
        "head.bn.running_mean": r(D, scale=0.3),
        "head.bn.running_var": (0.5 + torch.rand(D, generator=g)).float(),
        "head.bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
        "head.cls_token": r(1, 1, D, scale=0.5),
        "head.k.weight": r(D, D, scale=1 / math.sqrt(D)),
        "head.v.weight": r(D, D, scale=1 / math.sqrt(D)),
        "head.linear.weight": r(head_classes, D, scale=1 / math.sqrt(D)),
    }
    return sd, head


def images_to_patches(img, p):
    """[B, C, H, W] -> [B, K, C*p*p], raster order, (channel, row, col) inside."""
    B, C, H, W = img.shape
    R, Cc = H // p, W // p
    return img.reshape(B, C, R, p, Cc, p).transpose(0, 2, 4, 1, 3, 5).reshape(B, R * Cc, C * p * p)


# ---- sub-commands --------------------------------------------------------------

def cmd_gen(a):
    need_torch()
    os.makedirs(a.dir, exist_ok=True)
    cfg = {"img_size": [a.rows * a.patch, a.cols * a.patch], "patch_size": a.patch,
           "embed_dim": a.dim, "num_blocks": a.depth, "num_heads": a.heads,
           "num_channels": a.channels, "probe_layers": a.probe, "num_classes": 5}
    if a.mlp_hidden:
        cfg["mlp_hidden_dim"] = a.mlp_hidden
    sd, head = random_model(cfg, a.bias, a.seed)
    npsd = {k: v.numpy() for k, v in sd.items()}
    nphead = {k: v.numpy() for k, v in head.items()}
    # weights in the requested dtype; the reference uses the rounded values
    if a.wdtype == "f16":
        npsd = {k: v.astype(np.float16) for k, v in npsd.items()}
        sd = {k: torch.from_numpy(v.astype(np.float32)) for k, v in npsd.items()}
        stsd = npsd
    elif a.wdtype == "bf16":
        stsd = {k: ("BF16", bf16(v)) for k, v in npsd.items()}
        sd = {k: torch.from_numpy((bf16(v).astype(np.uint32) << 16).view(np.float32)) for k, v in npsd.items()}
    else:
        stsd = npsd
    meta = {"aim.config": json.dumps(cfg)}
    with open(os.path.join(a.dir, "model.safetensors"), "wb") as f:
        f.write(st_bytes({**stsd, **nphead}, meta))
    # Hugging Face layout and the release's backbone + head pair
    os.makedirs(os.path.join(a.dir, "hf"), exist_ok=True)
    with open(os.path.join(a.dir, "hf", "config.json"), "w") as f:
        json.dump(cfg, f)
    tsd = {k: (sd[k] if a.wdtype != "f16" else torch.from_numpy(npsd[k])) for k in sd}
    torch.save({**tsd, **head}, os.path.join(a.dir, "hf", "pytorch_model.bin"))
    torch.save(tsd, os.path.join(a.dir, "backbone.pth"))
    torch.save(head, os.path.join(a.dir, "head.pth"))
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        json.dump(cfg, f)

    # inputs: smooth U8 images (as aim-patchify would give) or normalised floats
    rng = np.random.default_rng(a.seed + 1)
    H, W = a.rows * a.patch, a.cols * a.patch
    mean = [0.4 + 0.05 * c for c in range(a.channels)]
    std = [0.2 + 0.03 * c for c in range(a.channels)]
    if a.u8:
        img8 = rng.integers(0, 256, (a.batch, a.channels, H, W), dtype=np.uint8)
        x = (img8.astype(np.float64) / 255 - np.array(mean)[None, :, None, None]) / \
            np.array(std)[None, :, None, None]
        patches = images_to_patches(img8, a.patch)
    else:
        x = rng.standard_normal((a.batch, a.channels, H, W)).astype(np.float32)
        patches = images_to_patches(x, a.patch)
        x = x.astype(np.float64)
    meta = {"aim.patch": str(a.patch), "aim.grid": json.dumps([a.rows, a.cols]),
            "aim.channels": str(a.channels), "aim.mean": json.dumps(mean),
            "aim.std": json.dumps(std), "aim.classes": json.dumps(["a", "b", "c"])}
    recs, i, sizes = [], 0, [2, 1, 3, 2, 5]
    for j, s in enumerate(sizes):
        s = min(s, a.batch - i)
        if s <= 0:
            break
        t = {"patches": np.ascontiguousarray(patches[i:i + s]),
             "label": np.arange(i, i + s, dtype=np.int64) % 3,
             "id": np.arange(i, i + s, dtype=np.int64)}
        m = dict(meta, **{"aim.names": json.dumps(["img%d.png" % k for k in range(i, i + s)])})
        recs.append((t, m))
        i += s
    write_stream(os.path.join(a.dir, "patches.aimt"), recs)

    outs, normed = trunk(sd, cfg, torch.from_numpy(x))
    ref = {"blocks": torch.stack(outs, 1).float().numpy(),   # [B, depth, K, D]
           "normed": normed.float().numpy()}
    probe = cfg["probe_layers"]
    probe = list(range(a.depth - probe, a.depth)) if isinstance(probe, int) else probe
    avg = torch.stack([outs[l] for l in probe], 0).mean(0)
    ref["probe_avg"] = avg.float().numpy()
    ref["probe_attn"] = head_pool(head, avg, a.heads).float().numpy()
    with open(os.path.join(a.dir, "ref.safetensors"), "wb") as f:
        f.write(st_bytes(ref))


def features_of(path):
    recs = read_stream(path)
    return np.concatenate([t["features"].astype(np.float32) for t, _ in recs]), recs


def cmd_compare(a):
    got, recs = features_of(a.features)
    ref, _ = read_st(a.ref)
    want = ref[a.key]
    if a.select is not None:  # blocks subset of [B, depth, K, D]
        want = want[:, [int(s) for s in a.select.split(",")]]
    if a.avg:
        want = want.mean(1)
    if a.pool_mean:
        want = want.mean(-2)
    if got.shape != want.shape:
        print("shape %s, reference %s" % (got.shape, want.shape))
        return 1
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max()) / scale
    print("%s: max error %.3g of scale %.3g" % (a.features, err, scale))
    if a.cosine is not None:  # per token: the last axis is the feature vector
        g, w = got.reshape(-1, got.shape[-1]).astype(np.float64), want.reshape(-1, want.shape[-1])
        cos = (g * w).sum(1) / (np.linalg.norm(g, axis=1) * np.linalg.norm(w, axis=1))
        print("%s: per-token cosine min %.6f mean %.6f (%d tokens)" %
              (a.features, cos.min(), cos.mean(), len(cos)))
        return 0 if cos.min() >= a.cosine else 1
    if a.meta:
        for kv in a.meta:
            k, v = kv.split("=", 1)
            if recs[0][1].get(k) != v:
                print("metadata %s = %r, expected %r" % (k, recs[0][1].get(k), v))
                return 1
    return 0 if err <= a.tol else 1


def cmd_check_dir(a):
    """The outputs test_model_parity.sh writes in DIR, each against its reference."""
    ref, _ = read_st(os.path.join(a.dir, "ref.safetensors"))
    cases = [("all.aimt", ref["blocks"]), ("avg.aimt", ref["probe_avg"]),
             ("norm.aimt", ref["normed"]), ("mean.aimt", ref["blocks"].mean(-2)),
             ("attn.aimt", ref["probe_attn"])]
    bad = 0
    for name, want in cases:
        got, _ = features_of(os.path.join(a.dir, name))
        if got.shape != want.shape:
            print("%s: shape %s, reference %s" % (name, got.shape, want.shape))
            bad = 1
            continue
        scale = float(np.abs(want).max())
        err = float(np.abs(got - want).max()) / scale
        print("%s/%s: max error %.3g of scale %.3g" % (a.dir, name, err, scale))
        bad |= err > a.tol
    return bad


def cmd_same(a):
    x, _ = features_of(a.a)
    y, _ = features_of(a.b)
    if x.shape != y.shape or not np.array_equal(x, y):
        print("features differ: %s vs %s" % (a.a, a.b))
        return 1
    return 0


def cmd_train_fixture(a):
    """A model with a non-square grid; expected per-block outputs under the
    causal and prefix-causal masks, and every parameter's gradient of
    L = sum(g * post_norm(last block)) under the prefix mask."""
    need_torch()
    cfg = {"img_size": [3 * 4, 5 * 4], "patch_size": 4, "embed_dim": 24, "num_blocks": 2,
           "num_heads": 2, "num_channels": 2, "probe_layers": 2, "num_classes": 5,
           "mlp_hidden_dim": 40, "use_bias": True}
    sd, _ = random_model(cfg, True, 11)
    rng = np.random.default_rng(12)
    B = 3
    x = rng.standard_normal((B, 2, 12, 20)).astype(np.float32)
    prefix = [2, 7, 20]
    out = {k: v.numpy() for k, v in sd.items()}
    out["ref.patches"] = images_to_patches(x, 4).astype(np.float32)
    out["ref.prefix"] = np.array(prefix, np.int64)
    for kind in ("causal", "prefix"):
        outs, _ = trunk(sd, cfg, torch.from_numpy(x.astype(np.float64)), kind, prefix)
        out["ref.%s.blocks" % kind] = torch.stack(outs, 1).float().numpy()
    params = {k: v.double().clone().requires_grad_(True) for k, v in sd.items()}
    outs, normed = trunk(params, cfg, torch.from_numpy(x.astype(np.float64)), "prefix", prefix)
    g = torch.from_numpy(rng.standard_normal(normed.shape))
    (normed * g).sum().backward()
    out["ref.g"] = g.float().numpy()
    for k, v in params.items():
        out["ref.grad." + k] = v.grad.float().numpy()
    with open(a.out, "wb") as f:
        f.write(st_bytes(out, {"aim.config": json.dumps(cfg)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    for k, v in [("dim", 32), ("depth", 2), ("heads", 2), ("patch", 4), ("channels", 3),
                 ("rows", 3), ("cols", 5), ("batch", 5), ("seed", 1), ("probe", 2),
                 ("mlp_hidden", 0)]:
        g.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    g.add_argument("--bias", type=int, default=0)
    g.add_argument("--u8", type=int, default=1)
    g.add_argument("--wdtype", default="f32", choices=["f32", "f16", "bf16"])
    c = sub.add_parser("compare")
    c.add_argument("features")
    c.add_argument("ref")
    c.add_argument("--key", default="blocks")
    c.add_argument("--select")
    c.add_argument("--avg", action="store_true")
    c.add_argument("--pool-mean", action="store_true")
    c.add_argument("--tol", type=float, default=1e-4)
    c.add_argument("--cosine", type=float, help="instead of --tol: least per-token cosine")
    c.add_argument("--meta", action="append")
    k = sub.add_parser("check-dir")
    k.add_argument("dir")
    k.add_argument("--tol", type=float, default=1e-4)
    s = sub.add_parser("same")
    s.add_argument("a")
    s.add_argument("b")
    t = sub.add_parser("train-fixture")
    t.add_argument("out")
    a = ap.parse_args()
    return {"gen": cmd_gen, "compare": cmd_compare, "same": cmd_same, "check-dir": cmd_check_dir,
            "train-fixture": cmd_train_fixture}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
