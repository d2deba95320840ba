#!/usr/bin/python3
"""PyTorch reference for aim-train, written for the tests (independent of
the C code): AIM v1 trunk (or the AIMv2 one: RMSNorm, SwiGLU, a learned
position table, told apart by the checkpoint's tensors) with prefix-causal
attention, the pixel head, the normalised-pixel loss, global-norm clipping and torch.optim.AdamW; and the
ablation variants as aim-train(1) documents them: the orders (raster,
spiral, checkerboard, random), causal attention, the masked objective with
its mask token, the linear ("none") and transformer pixel heads.

  train_ref.py make-stream OUT --n N --grid R C --patch P --channels C [--seed S]
      an uncompressed patches stream of smooth synthetic U8 images
  train_ref.py check-step --data STREAM --before CKPT --after CKPT --log LOG ...
      one training step from CKPT `before` on the first batch of STREAM;
      compares the loss and gradient norm (log.csv), every gradient (through
      the first moments m = (1-β1)·g of `after`), the second moments and
      the updated weights. Exit 1 on any mismatch, naming the tensor.
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch

DT = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I64": np.int64}


def read_safetensors_bytes(buf, off=0):
    (n,) = struct.unpack_from("<Q", buf, off)
    header = json.loads(bytes(buf[off + 8:off + 8 + n]).decode("utf-8"))
    base = off + 8 + n
    meta = header.pop("__metadata__", {})
    tensors, end = {}, 0
    for name, e in header.items():
        a, b = e["data_offsets"]
        end = max(end, b)
        if e["dtype"] == "BF16":
            raw = np.frombuffer(buf, np.uint16, (b - a) // 2, base + a).astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            arr = np.frombuffer(buf, DT[e["dtype"]], (b - a) // np.dtype(DT[e["dtype"]]).itemsize, base + a)
        tensors[name] = arr.reshape(e["shape"]).copy()
    return tensors, meta, base + end


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    t, m, _ = read_safetensors_bytes(buf)
    return t, m


def read_stream(path):
    """Records of an uncompressed (or zstd) stream."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard
        d = zstandard.ZstdDecompressor()
        out = bytearray()
        with d.stream_reader(buf, read_across_frames=True) as r:
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                out += chunk
        buf = bytes(out)
    off, recs = 0, []
    while off < len(buf):
        t, m, off = read_safetensors_bytes(buf, off)
        recs.append((t, m))
    return recs


def write_record(f, tensors, meta):
    header, data, off = {}, b"", 0
    for name, arr in tensors.items():
        dt = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[arr.dtype]
        raw = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    f.write(struct.pack("<Q", len(h)) + h + data)


def make_stream(a):
    rng = np.random.default_rng(a.seed)
    R, C, p, ch = a.grid[0], a.grid[1], a.patch, a.channels
    H, W = R * p, C * p
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    imgs = []
    for i in range(a.n):
        # Smooth, predictable images: a few oriented waves plus a blob.
        img = np.zeros((ch, H, W))
        for c in range(ch):
            fx, fy = rng.uniform(0.05, 0.3, 2)
            ph = rng.uniform(0, 2 * math.pi)
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
            img[c] = 0.5 + 0.3 * np.sin(fx * xx + fy * yy + ph) + \
                0.2 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.1 * H * W))
        imgs.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    with open(a.out, "wb") as f:
        i, rec = 0, 0
        while i < a.n:
            b = min([5, 3, 7][rec % 3], a.n - i)
            x = np.stack(imgs[i:i + b])  # [b, ch, H, W]
            x = x.reshape(b, ch, R, p, C, p).transpose(0, 2, 4, 1, 3, 5).reshape(b, R * C, ch * p * p)
            meta = {"aim.patch": str(p), "aim.grid": json.dumps([R, C]), "aim.channels": str(ch),
                    "aim.mean": json.dumps([0.5] * ch), "aim.std": json.dumps([0.25] * ch)}
            if a.epoch is not None:
                meta["aim.epoch"] = str(a.epoch)
            write_record(f, {"patches": np.ascontiguousarray(x),
                             "id": np.arange(i, i + b, dtype=np.int64)}, meta)
            i += b
            rec += 1


# ---- counter-based prefix lengths (the documented rule of aim-train) ----
M64 = (1 << 64) - 1


def mix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def rng_at(seed, stream, index):
    return mix64((mix64(seed ^ mix64(stream)) + index) & M64)


def rng_int(seed, stream, index, lo, hi):
    rng = hi - lo + 1
    limit = M64 + 1 - ((M64 + 1) % rng)
    w = rng_at(seed, stream, index)
    k = 1
    while w >= limit:
        w = rng_at(seed ^ k, stream, index)
        k += 1
    return lo + w % rng


def prefix_len(seed, g, K, stream=1):
    return rng_int(seed, stream, g, 1, K - 1)


# ---- the ablations' orders and masks (aim-train(1), --order, --objective) ----
def patch_order(name, R, C, seed):
    """order[t]: the grid place (r*C + c) of the patch read at step t."""
    K = R * C
    if name == "raster":
        return list(range(K))
    if name == "checkerboard":
        cells = [(r, c) for r in range(R) for c in range(C)]
        return [r * C + c for r, c in cells if (r + c) % 2 == 0] + \
               [r * C + c for r, c in cells if (r + c) % 2 == 1]
    if name == "spiral":
        # walk the rings from the top-left corner: down the left column, along
        # the bottom, up the right, along the top, inwards; then reversed
        walk, seen = [], set()
        top, left, bottom, right = 0, 0, R - 1, C - 1
        while top <= bottom and left <= right:
            ring = [(r, left) for r in range(top, bottom + 1)]
            ring += [(bottom, c) for c in range(left + 1, right + 1)]
            if left < right:
                ring += [(r, right) for r in range(bottom - 1, top - 1, -1)]
            if top < bottom:
                ring += [(top, c) for c in range(right - 1, left, -1)]
            for cell in ring:
                if cell not in seen:
                    seen.add(cell)
                    walk.append(cell[0] * C + cell[1])
            top, left, bottom, right = top + 1, left + 1, bottom - 1, right - 1
        return walk[::-1]
    if name == "random":
        p = list(range(K))
        for i in range(K - 1, 0, -1):
            j = rng_int(seed, 4, i, 0, i)
            p[i], p[j] = p[j], p[i]
        return p
    raise ValueError(name)


def mask_count(ratio, K):
    m = int(math.floor(ratio * K + 0.5))
    return max(1, min(K - 1, m))


def mask_places(seed, stream, sample, K, count):
    p = list(range(K))
    for i in range(K - 1, 0, -1):
        j = rng_int(seed, stream, sample * K + i, 0, i)
        p[i], p[j] = p[j], p[i]
    flags = np.zeros(K, bool)
    flags[p[:count]] = True
    return flags


# ---- the model ----
def sincos_1d(D, pos):
    omega = np.arange(D // 2, dtype=np.float64) / (D / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.outer(pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(D, rows, cols):
    gw, gh = np.meshgrid(np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64))
    return torch.tensor(np.concatenate([sincos_1d(D // 2, gw), sincos_1d(D // 2, gh)], axis=1),
                        dtype=torch.float32)


def layernorm(x, P, name, eps=1e-6):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], P[name + ".weight"], P[name + ".bias"], eps)


def trunk_norm(x, P, name):
    """The trunk's norm: LayerNorm (AIM v1), or RMSNorm, weight only, eps 1e-5
    (AIMv2: its norms have no bias)."""
    if name + ".bias" in P:
        return layernorm(x, P, name)
    w = P[name + ".weight"]
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def linear(x, P, name):
    return torch.nn.functional.linear(x, P[name + ".weight"], P.get(name + ".bias"))


def attend(x, P, pre, heads, mask):
    B, K, D = x.shape
    hd = D // heads
    h = layernorm(x, P, pre + "norm_1")
    qkv = linear(h, P, pre + "attn.qkv").reshape(B, K, 3, heads, hd).permute(2, 0, 3, 1, 4)
    s = (qkv[0] @ qkv[1].transpose(-1, -2)) / math.sqrt(hd)
    s = s.masked_fill(~mask[:, None], float("-inf"))
    a = torch.softmax(s, dim=-1) @ qkv[2]
    return x + linear(a.transpose(1, 2).reshape(B, K, D), P, pre + "attn.proj")


def forward(P, patches, prefix, heads, rows, cols, head_blocks, order=None, attention="prefix",
            masked=None, head="mlp"):
    """patches [B, K, Pd] in sequence order (already permuted by `order`);
    masked [B, K] bool for the masked objective (bidirectional attention)."""
    B, K, _ = patches.shape
    order = list(range(K)) if order is None else order
    w = P["preprocessor.patchifier.proj.weight"]
    D = w.shape[0]
    x = patches @ w.reshape(D, -1).t() + P["preprocessor.patchifier.proj.bias"]
    x = trunk_norm(x, P, "preprocessor.patchifier.norm")
    if masked is not None:
        x = torch.where(torch.tensor(masked)[:, :, None], P["mask_token"][None, None, :], x)
    x = x + (P["preprocessor.pos_embed"][0] if "preprocessor.pos_embed" in P else sincos_2d(D, rows, cols)[order])
    i = torch.arange(K)
    causal = (i[None, :] <= i[:, None])[None].expand(B, K, K)
    if masked is not None:
        mask = torch.ones(B, K, K, dtype=torch.bool)
    elif attention == "causal":
        mask = causal
    else:
        mask = causal | (i[None, None, :] < torch.tensor(prefix)[:, None, None])  # [B, K, K]
    hd = D // heads
    nblocks = len({k.split(".")[2] for k in P if k.startswith("trunk.blocks.")})
    for b in range(nblocks):
        pre = "trunk.blocks.%d." % b
        h = trunk_norm(x, P, pre + "norm_1")
        qkv = linear(h, P, pre + "attn.qkv").reshape(B, K, 3, heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~mask[:, None], float("-inf"))
        a = torch.softmax(s, dim=-1) @ v
        x = x + linear(a.transpose(1, 2).reshape(B, K, D), P, pre + "attn.proj")
        h = trunk_norm(x, P, pre + "norm_2")
        if pre + "mlp.fc3.weight" in P:  # AIMv2: SwiGLU
            g = torch.nn.functional.silu(linear(h, P, pre + "mlp.fc1")) * linear(h, P, pre + "mlp.fc3")
        else:
            g = torch.nn.functional.gelu(linear(h, P, pre + "mlp.fc1"))
        x = x + linear(g, P, pre + "mlp.fc2")
    x = trunk_norm(x, P, "trunk.post_trunk_norm")
    # pixel head
    if head == "none":
        return linear(x, P, "pixel_head.pred")
    Wd = P["pixel_head.proj.weight"].shape[0]
    y = linear(x, P, "pixel_head.proj") + sincos_2d(Wd, rows, cols)[order]
    for b in range(head_blocks):
        pre = "pixel_head.blocks.%d." % b
        if head == "transformer":
            y = attend(y, P, pre, heads, causal if masked is None else mask)
            y = y + linear(torch.nn.functional.gelu(linear(layernorm(y, P, pre + "norm_2"), P, pre + "mlp.fc1")),
                           P, pre + "mlp.fc2")
        else:
            y = y + linear(torch.nn.functional.gelu(linear(layernorm(y, P, pre + "norm"), P, pre + "mlp.fc1")),
                           P, pre + "mlp.fc2")
    y = layernorm(y, P, "pixel_head.norm")
    return linear(y, P, "pixel_head.pred")


def loss_fn(pred, patches, prefix, norm_pix, masked=None):
    t = patches
    if norm_pix:
        t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5
    if masked is not None:  # each masked patch predicted at its own place
        keep = torch.tensor(masked)
        err = ((pred - t) ** 2).mean(-1)
        return (err * keep).sum() / keep.sum()
    err = ((pred[:, :-1] - t[:, 1:]) ** 2).mean(-1)  # [B, K-1]: position k predicts k+1
    K = patches.shape[1]
    keep = torch.arange(1, K)[None, :] >= torch.tensor(prefix)[:, None]
    return (err * keep).sum() / keep.sum()


def load_batch(path, n):
    out = []
    for t, m in read_stream(path):
        x = t["patches"]
        ch = int(m["aim.channels"])
        if x.dtype == np.uint8:
            mean = np.array(json.loads(m["aim.mean"]), np.float32)
            std = np.array(json.loads(m["aim.std"]), np.float32)
            B, K, Pd = x.shape
            pp = Pd // ch
            xf = x.astype(np.float32).reshape(B, K, ch, pp) / 255.0
            xf = (xf - mean[None, None, :, None]) / std[None, None, :, None]
            x = xf.reshape(B, K, Pd)
        out.extend(list(x.astype(np.float32)))
        if len(out) >= n:
            return np.stack(out[:n]), m
    sys.exit("stream has fewer than %d images" % n)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def check_step(a):
    before, _ = read_safetensors(a.before)
    after, ameta = read_safetensors(a.after)
    x, meta = load_batch(a.data, a.batch)
    rows, cols = json.loads(meta["aim.grid"])
    K = rows * cols
    masked = None
    if a.objective == "masked":
        m = mask_count(a.mask_ratio, K)
        masked = np.stack([mask_places(a.seed, 5, g, K, m) for g in range(a.batch)])
        prefix = [1] * a.batch
    elif a.attention == "causal":
        prefix = [1] * a.batch  # every patch after the first is predicted
    else:
        prefix = [prefix_len(a.seed, g, K) for g in range(a.batch)]
    order = patch_order(a.order, rows, cols, a.seed)
    names = [k for k in before if not k.startswith("optim.")]
    P = {k: torch.tensor(before[k].astype(np.float32), requires_grad=True) for k in names}
    head_blocks = len({k.split(".")[2] for k in P if k.startswith("pixel_head.blocks.")})
    patches = torch.tensor(x)[:, order]  # the sequence in the order
    pred = forward(P, patches, prefix, a.heads, rows, cols, head_blocks, order, a.attention, masked,
                   a.head)
    loss = loss_fn(pred, patches, prefix, not a.no_norm_pix, masked)
    loss.backward()
    params = [P[k] for k in names]
    if a.clip > 0:
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, a.clip))
    else:  # no clipping: only the norm, for the log
        gnorm = float(torch.norm(torch.stack([p.grad.norm() for p in params])))
    lr = a.lr * 1.0 / a.warmup if a.warmup > 0 else a.lr
    nd = ("bias", "norm", "pos_embed", "mask_token")
    decay = [P[k] for k in names if not any(s in k for s in nd)]
    nodecay = [P[k] for k in names if any(s in k for s in nd)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), eps=1e-8)
    opt.step()

    # log.csv of the C run, first step
    with open(a.log) as f:
        hdr = f.readline().strip().split(",")
        row = dict(zip(hdr, f.readline().strip().split(",")))
    bad = 0

    def report(what, e, tol):
        nonlocal bad
        flag = "ok" if e <= tol else "MISMATCH"
        if e > tol:
            bad += 1
        if e > tol or a.verbose:
            print("%-60s rel err %.3g (tol %g) %s" % (what, e, tol, flag))

    # fp32 against fp32: 1e-4. A bf16 run (products of bf16 operands,
    # fp32 accumulation) against this fp32 reference: the loss to 2e-3,
    # gradients to 2e-2 of their norm (the second moments, squares of
    # them, to 4e-2). Its updated weights are checked against AdamW's first
    # step from its own moments (to 1e-5): against torch's they differ by
    # lr wherever a near-zero gradient changed sign, which says nothing
    # about the update.
    T = {"fp32": dict(loss=1e-4, grad=1e-4, v=2e-4, w=1e-5),
         "bf16": dict(loss=2e-3, grad=2e-2, v=4e-2, w=1e-5)}[a.precision]
    report("loss %s vs %.8g" % (row["loss"], float(loss)), abs(float(row["loss"]) - float(loss)) / float(loss), T["loss"])
    report("grad_norm %s vs %.8g" % (row["grad_norm"], gnorm), abs(float(row["grad_norm"]) - gnorm) / gnorm, T["grad"])
    report("lr %s vs %.8g" % (row["lr"], lr), abs(float(row["lr"]) - lr) / lr, 1e-6)
    worst = 0.0
    for k in names:
        st = opt.state[P[k]]
        m_c = after["optim.m." + k]
        v_c = after["optim.v." + k]
        # gradients (after clipping) through m = (1 - β1) g
        e = rel(m_c, st["exp_avg"].numpy())
        report("grad " + k, e, T["grad"])
        report("v " + k, rel(v_c, st["exp_avg_sq"].numpy()), T["v"])
        if a.precision == "fp32":
            want = P[k].detach().numpy()
        else:  # step 1: m̂ = m/(1-β1) = g, v̂ = v/(1-β2) = g²
            wd = a.wd if any(P[k] is d for d in decay) else 0.0
            m_hat, v_hat = m_c.astype(np.float64) / 0.1, v_c.astype(np.float64) / 0.05
            want = before[k] * (1 - lr * wd) - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        report("weight " + k, rel(after[k], want), T["w"])
        worst = max(worst, e)
    if int(ameta.get("aim.train.step", "-1")) != 1:
        print("after checkpoint is not at step 1")
        bad += 1
    print("checked %d tensors: loss %.6g, grad norm %.6g, worst gradient rel err %.3g, %d mismatches"
          % (len(names), float(loss), gnorm, worst, bad))
    return 1 if bad else 0


class Block(torch.nn.Module):
    def __init__(self, D, H, hidden, attn=True):
        super().__init__()
        self.H, self.attn_on = H, attn
        if attn:
            self.norm_1 = torch.nn.LayerNorm(D, eps=1e-6)
            self.qkv = torch.nn.Linear(D, 3 * D, bias=False)
            self.proj = torch.nn.Linear(D, D, bias=False)
        self.norm_2 = torch.nn.LayerNorm(D, eps=1e-6)
        self.fc1 = torch.nn.Linear(D, hidden, bias=False)
        self.fc2 = torch.nn.Linear(hidden, D, bias=False)

    def forward(self, x, mask):
        B, K, D = x.shape
        if self.attn_on:
            hd = D // self.H
            q, k, v = self.qkv(self.norm_1(x)).reshape(B, K, 3, self.H, hd).permute(2, 0, 3, 1, 4)
            s = (q @ k.transpose(-1, -2)) * hd ** -0.5
            s = s.masked_fill(~mask[:, None], float("-inf"))
            x = x + self.proj((torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, K, D))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm_2(x))))


class AimForBench(torch.nn.Module):
    """The same trunk and pixel head as nn.Modules, for the speed benchmark."""

    def __init__(self, a):
        super().__init__()
        R, C = a.grid
        P = a.channels * a.patch * a.patch
        self.patch = torch.nn.Linear(P, a.dim)
        self.patch_norm = torch.nn.LayerNorm(a.dim, eps=1e-6)
        self.register_buffer("pos", sincos_2d(a.dim, R, C))
        self.blocks = torch.nn.ModuleList([Block(a.dim, a.heads, 4 * a.dim) for _ in range(a.depth)])
        self.post_norm = torch.nn.LayerNorm(a.dim, eps=1e-6)
        self.head_proj = torch.nn.Linear(a.dim, a.head_dim)
        self.register_buffer("head_pos", sincos_2d(a.head_dim, R, C))
        self.head_blocks = torch.nn.ModuleList([Block(a.head_dim, 1, 4 * a.head_dim, attn=False)
                                                for _ in range(a.head_blocks)])
        self.head_norm = torch.nn.LayerNorm(a.head_dim, eps=1e-6)
        self.head_pred = torch.nn.Linear(a.head_dim, P)

    def forward(self, x, mask):
        x = self.patch_norm(self.patch(x)) + self.pos
        for b in self.blocks:
            x = b(x, mask)
        y = self.head_proj(self.post_norm(x)) + self.head_pos
        for b in self.head_blocks:
            y = b(y, None)
        return self.head_pred(self.head_norm(y))


def bench(a):
    import time
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = AimForBench(a)
    R, C = a.grid
    K, P = R * C, a.channels * a.patch * a.patch
    decay = [p for n, p in m.named_parameters() if p.ndim > 1]
    rest = [p for n, p in m.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    x = torch.randn(a.batch, K, P)
    times = []
    for step in range(a.steps):
        t0 = time.perf_counter()
        prefix = [prefix_len(0, step * a.batch + i, K) for i in range(a.batch)]
        i = torch.arange(K)
        mask = (i[None, :] <= i[:, None])[None] | (i[None, None, :] < torch.tensor(prefix)[:, None, None])
        loss = loss_fn(m(x, mask), x, prefix, True)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    t = sorted(times[1:])[len(times[1:]) // 2] if len(times) > 1 else times[0]
    print("%.3f" % (a.batch / t))
    return 0


def features(a):
    """aim-extract --layers all [--mask causal] of a checkpoint, in PyTorch:
    the mean of every block's output, tokens in the model's order (raster
    unless its aim.train names another) when the causal mask is kept."""
    P, meta = read_safetensors(a.model)
    P = {k: torch.tensor(v.astype(np.float32)) for k, v in P.items()}
    x, m = load_batch(a.data, a.n)
    rows, cols = json.loads(m["aim.grid"])
    K = rows * cols
    st = json.loads(meta.get("aim.train", "{}"))
    order = patch_order(st.get("order", "raster"), rows, cols, int(st.get("seed", "0"))) \
        if a.mask == "causal" else list(range(K))
    x = torch.tensor(x)[:, order]
    D = P["preprocessor.patchifier.proj.weight"].shape[0]
    h = x @ P["preprocessor.patchifier.proj.weight"].reshape(D, -1).t() + P["preprocessor.patchifier.proj.bias"]
    h = layernorm(h, P, "preprocessor.patchifier.norm") + sincos_2d(D, rows, cols)[order]
    i = torch.arange(K)
    mask = (i[None, :] <= i[:, None]) if a.mask == "causal" else torch.ones(K, K, dtype=torch.bool)
    mask = mask[None].expand(x.shape[0], K, K)
    nblocks = len({k.split(".")[2] for k in P if k.startswith("trunk.blocks.")})
    outs = []
    for b in range(nblocks):
        pre = "trunk.blocks.%d." % b
        h = attend(h, P, pre, a.heads, mask)
        h = h + linear(torch.nn.functional.gelu(linear(layernorm(h, P, pre + "norm_2"), P, pre + "mlp.fc1")),
                       P, pre + "mlp.fc2")
        outs.append(h)
    ref = torch.stack(outs).mean(0).numpy()
    got = np.concatenate([t["features"] for t, _ in read_stream(a.features)])[:a.n]
    e = rel(got, ref)
    print("features %s: %d images, rel err %.3g" % (a.mask, a.n, e))
    return 0 if e <= 1e-5 else 1


def compare(a):
    """Largest absolute difference of the weights of two checkpoints."""
    x, _ = read_safetensors(a.a)
    y, _ = read_safetensors(a.b)
    names = [k for k in x if not k.startswith("optim.")]
    if sorted(names) != sorted(k for k in y if not k.startswith("optim.")):
        print("the checkpoints hold different tensors")
        return 1
    worst, where = 0.0, ""
    for k in names:
        d = float(np.max(np.abs(x[k].astype(np.float64) - y[k].astype(np.float64))))
        if d > worst:
            worst, where = d, k
    print("%d tensors, largest difference %.3g (%s), tolerance %g" % (len(names), worst, where, a.tol))
    return 0 if worst <= a.tol else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("make-stream")
    s.add_argument("out")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--grid", type=int, nargs=2, default=[4, 4])
    s.add_argument("--patch", type=int, default=4)
    s.add_argument("--channels", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--epoch", type=int)
    c = sub.add_parser("check-step")
    for k in ("--data", "--before", "--after", "--log"):
        c.add_argument(k, required=True)
    c.add_argument("--batch", type=int, required=True)
    c.add_argument("--heads", type=int, required=True)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--lr", type=float, required=True)
    c.add_argument("--warmup", type=int, required=True)
    c.add_argument("--wd", type=float, default=0.05)
    c.add_argument("--clip", type=float, default=1.0)
    c.add_argument("--no-norm-pix", action="store_true")
    c.add_argument("--order", default="raster", choices=["raster", "spiral", "checkerboard", "random"])
    c.add_argument("--attention", default="prefix", choices=["prefix", "causal"])
    c.add_argument("--objective", default="autoregressive", choices=["autoregressive", "masked"])
    c.add_argument("--mask-ratio", type=float, default=0.75)
    c.add_argument("--head", default="mlp", choices=["mlp", "none", "transformer"])
    c.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="the C run's matrix-product precision (sets the tolerances)")
    c.add_argument("-v", "--verbose", action="store_true")
    o = sub.add_parser("order")
    o.add_argument("name")
    o.add_argument("rows", type=int)
    o.add_argument("cols", type=int)
    o.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("bench")
    for k, d in (("--dim", 384), ("--depth", 12), ("--heads", 6), ("--head-blocks", 2), ("--head-dim", 384),
                 ("--patch", 14), ("--channels", 3), ("--batch", 16), ("--steps", 4), ("--threads", 2)):
        b.add_argument(k, type=int, default=d)
    b.add_argument("--grid", type=int, nargs=2, default=[16, 16])
    f = sub.add_parser("features")
    f.add_argument("--model", required=True)
    f.add_argument("--data", required=True)
    f.add_argument("--features", required=True)
    f.add_argument("--n", type=int, required=True)
    f.add_argument("--heads", type=int, required=True)
    f.add_argument("--mask", default="none", choices=["none", "causal"])
    m = sub.add_parser("compare")
    m.add_argument("a")
    m.add_argument("b")
    m.add_argument("--tol", type=float, default=0.0)
    a = ap.parse_args()
    if a.cmd == "compare":
        return compare(a)
    if a.cmd == "bench":
        return bench(a)
    if a.cmd == "features":
        torch.set_num_threads(1)
        return features(a)
    if a.cmd == "order":
        print(" ".join(map(str, patch_order(a.name, a.rows, a.cols, a.seed))))
        return 0
    torch.set_num_threads(1)
    if a.cmd == "make-stream":
        make_stream(a)
        return 0
    return check_step(a)


if __name__ == "__main__":
    sys.exit(main())
