"""PyTorch reference for the probe heads and aim-eval (tests/ref/test_probe_*.sh,
test_eval_*.sh). Written from the published AIM v1 semantics
(AttentionPoolingClassifier: BatchNorm1d(affine=False, eps=1e-6) per token,
learned queries without a q projection, k/v Linear without bias, softmax
attention per head, mean over queries, linear) with plain PyTorch ops; it
shares no code with the C implementation.

Usage:
  probe_ref.py head KIND QUERIES BIAS WORKDIR DUMP_BIN   head parity + one step
  probe_ref.py eval-case WORKDIR KIND f16|f32            features + head for aim-eval
  probe_ref.py eval-check WORKDIR JSON [LOGITS]          compare aim-eval --json
  probe_ref.py learnable WORKDIR [f16|f32] [D]           synthetic train/val streams
  probe_ref.py e2e-case WORKDIR                          images, HF model, reference
  probe_ref.py train-case WORKDIR KIND                   features, head0, trained reference
  probe_ref.py compare-heads REF GOT TOL                 every tensor of two head files
"""
import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
import zstandard

DT = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "U8": np.uint8, "I32": np.int32}
DT_NAME = {np.dtype(v): k for k, v in DT.items()}


# ---- safetensors and the tensor stream, written out by hand -------------
def st_bytes(tensors, meta=None):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        b = arr.tobytes()
        header[name] = {"dtype": DT_NAME[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def st_parse(buf):
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=DT[e["dtype"]]).reshape(e["shape"])
    return out, meta


def st_write(path, tensors, meta=None):
    with open(path, "wb") as f:
        f.write(st_bytes(tensors, meta))


def st_read(path):
    with open(path, "rb") as f:
        return st_parse(f.read())


def stream_write(path, records):
    """records: list of (tensors, meta); each its own zstd frame with checksum."""
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
    with open(path, "wb") as f:
        for tensors, meta in records:
            f.write(cctx.compress(st_bytes(tensors, meta)))


def stream_read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        dctx = zstandard.ZstdDecompressor()
        raw = b"".join(dctx.read_to_iter(raw)) if False else _all_frames(raw)
    recs, pos = [], 0
    while pos < len(raw):
        n = struct.unpack("<Q", raw[pos:pos + 8])[0]
        header = json.loads(raw[pos + 8:pos + 8 + n])
        end = max([e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"] + [0])
        recs.append(st_parse(raw[pos:pos + 8 + n + end]))
        pos += 8 + n + end
    return recs


def _all_frames(raw):
    out, dctx = [], zstandard.ZstdDecompressor()
    obj = dctx.decompressobj()
    while raw:
        obj = dctx.decompressobj()
        out.append(obj.decompress(raw))
        raw = obj.unused_data
    return b"".join(out)


# ---- the heads ----------------------------------------------------------
class AttentiveHead(torch.nn.Module):
    def __init__(self, dim, classes, heads, queries, bias):
        super().__init__()
        self.heads, self.queries = heads, queries
        self.bn = torch.nn.BatchNorm1d(dim, affine=False, eps=1e-6)
        self.cls_token = torch.nn.Parameter(torch.randn(1, queries, dim) * 0.5)
        self.k = torch.nn.Linear(dim, dim, bias=False)
        self.v = torch.nn.Linear(dim, dim, bias=False)
        self.linear = torch.nn.Linear(dim, classes, bias=bias)

    def pool(self, x):
        B, N, D = x.shape
        H, Q, hd = self.heads, self.queries, D // self.heads
        x = self.bn(x.transpose(1, 2)).transpose(1, 2)
        q = self.cls_token.expand(B, -1, -1).reshape(B, Q, H, hd).permute(0, 2, 1, 3)
        k = self.k(x).reshape(B, N, H, hd).permute(0, 2, 1, 3)
        v = self.v(x).reshape(B, N, H, hd).permute(0, 2, 1, 3)
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1)
        o = (a @ v).transpose(1, 2).reshape(B, Q, D)
        return o.mean(dim=1)

    def forward(self, x):
        return self.linear(self.pool(x))


class LinearHead(torch.nn.Module):
    def __init__(self, dim, classes, bias):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(dim, affine=False, eps=1e-6)
        self.linear = torch.nn.Linear(dim, classes, bias=bias)

    def pool(self, x):
        return self.bn(x.mean(dim=1))

    def forward(self, x):
        return self.linear(self.pool(x))


def head_tensors(m):
    out = {}
    for name, t in m.state_dict().items():
        out["head." + name] = t.detach().cpu().numpy().copy()
    return out


def randomise_bn(m, dim, rng):
    m.bn.running_mean.copy_(torch.tensor(rng.normal(0, 0.5, dim), dtype=torch.float32))
    m.bn.running_var.copy_(torch.tensor(rng.uniform(0.5, 2.0, dim), dtype=torch.float32))


def report(name, ref, got, tol):
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64).reshape(ref.shape)
    err = np.max(np.abs(ref - got)) / (np.max(np.abs(ref)) + 1e-12)
    ok = err <= tol
    print(f"{'ok ' if ok else 'BAD'} {name:28s} max rel err {err:.2e} (tol {tol:.0e})")
    return ok


# ---- head parity and one training step ----------------------------------
def cmd_head(kind, queries, bias, work, dump_bin):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    B, K, D, C, H = 6, 10, 48, 7, 4
    lr, wd, smooth = 1e-2, 0.05, 0.1
    if kind == "attentive":
        m = AttentiveHead(D, C, H, queries, bias)
    else:
        m = LinearHead(D, C, bias)
    with torch.no_grad():
        randomise_bn(m, D, rng)
    x = torch.tensor(rng.normal(0.3, 1.5, (B, K, D)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, C, B), dtype=torch.int64)
    tensors = head_tensors(m)
    tensors["x"], tensors["label"] = x.numpy(), y.numpy()
    meta = {"lr": lr, "wd": wd, "smoothing": smooth}
    if kind == "attentive":
        meta["aim.head"] = json.dumps({"probe": "attentive", "dim": D, "classes": C,
                                       "heads": H, "queries": queries})
    inp, outp = os.path.join(work, "in.safetensors"), os.path.join(work, "out.safetensors")
    st_write(inp, tensors, meta)
    subprocess.run([dump_bin, inp, outp], check=True)
    got, _ = st_read(outp)

    ok = True
    m.eval()
    with torch.no_grad():
        ok &= report("eval logits", m(x), got["eval.logits"], 1e-5)
        ok &= report("eval pooled", m.pool(x), got["eval.pooled"], 1e-5)
    m.train()
    xg = x.clone().requires_grad_(True)
    logits = m(xg)
    loss = F.cross_entropy(logits, y, label_smoothing=smooth)
    loss.backward()
    ok &= report("train logits", logits.detach(), got["train.logits"], 1e-5)
    ok &= report("train loss", loss.detach().reshape(1), got["train.loss"], 1e-6)
    ok &= report("running_mean after step", m.bn.running_mean, got["train.running_mean"], 1e-6)
    ok &= report("running_var after step", m.bn.running_var, got["train.running_var"], 1e-6)
    ok &= report("grad x (through BN)", xg.grad, got["grad.x"], 1e-4)
    params = dict(m.named_parameters())
    for name, p in params.items():
        ok &= report("grad " + name, p.grad, got["grad.head." + name], 1e-4)
    decay = [p for n, p in params.items() if n.endswith("weight")]
    other = [p for n, p in params.items() if not n.endswith("weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                             {"params": other, "weight_decay": 0.0}], lr=lr)
    grads = {n: p.grad.clone() for n, p in params.items()}
    for _ in range(2):  # two steps with the same gradient, as the dump does
        for n, p in params.items():
            p.grad = grads[n].clone()
        opt.step()
    # AdamW normalises each gradient element by its own magnitude, so the
    # float rounding of the tiniest gradients shows in the step: compare
    # the change of each parameter, relative to the largest change (2 lr)
    before = {n: torch.tensor(tensors["head." + n]) for n in params}
    for name, p in params.items():
        ok &= report("adamw 2 steps " + name, (p.detach() - before[name]).reshape(-1),
                     (torch.tensor(got["step.head." + name]) - before[name]).reshape(-1), 1e-3)
    return 0 if ok else 1


# ---- aim-eval against the published evaluation semantics ----------------
def accuracy(output, target, topk=(1,)):
    """utils.accuracy of the published code: top-k capped at the class count."""
    maxk = min(max(topk), output.size()[1])
    _, pred = output.topk(maxk, 1, True, True)
    pred = pred.t()
    correct = pred.eq(target.reshape(1, -1).expand_as(pred))
    return [correct[:min(k, maxk)].reshape(-1).float().sum(0).item() * 100.0 / target.size(0)
            for k in topk]


def cmd_eval_case(work, kind, dtype):
    """A random head (published names, no aim.head metadata: heads from
    config.json beside it) and a features stream of several records."""
    torch.manual_seed(2)
    rng = np.random.default_rng(3)
    D, C, H, K = 384, 9, 2, 12  # D/128 = 3: the heads must come from config.json
    m = AttentiveHead(D, C, H, 2, False) if kind == "attentive" else LinearHead(D, C, True)
    with torch.no_grad():
        randomise_bn(m, D, rng)
        m.linear.weight.mul_(8)
    os.makedirs(os.path.join(work, "hf"), exist_ok=True)
    st_write(os.path.join(work, "hf", "model.safetensors"), head_tensors(m))
    with open(os.path.join(work, "hf", "config.json"), "w") as f:
        json.dump({"num_heads": H, "embed_dim": D, "num_classes": C}, f)
    classes = [f"class{i}" for i in range(C)]
    recs, xs, ys = [], [], []
    for i, B in enumerate([7, 30, 1, 22]):
        x = rng.normal(0.2, 1.2, (B, K, D)).astype(np.float32)
        y = rng.integers(0, C, B).astype(np.int64)
        if i == 2:
            y[:] = -1  # unknown labels are skipped
        xs.append(x)
        ys.append(y)
        meta = {"aim.classes": json.dumps(classes)} if i == 0 else {}
        recs.append(({"features": x.astype(dtype), "label": y}, meta))
    stream_write(os.path.join(work, "features.aimt"), recs)
    x = torch.tensor(np.concatenate(xs).astype(dtype).astype(np.float32))
    y = torch.tensor(np.concatenate(ys))
    keep = y >= 0
    m.eval()
    with torch.no_grad():
        out = m(x)[keep]
    y = y[keep]
    top1, top5 = accuracy(out, y, (1, 5))
    loss = F.cross_entropy(out, y).item()
    pred = out.argmax(1)
    per_class = {classes[c]: (100.0 * (pred[y == c] == c).double().mean().item()
                              if (y == c).any() else None) for c in range(C)}
    ref = {"n": int(keep.sum()), "top1": top1, "top5": top5, "loss": loss,
           "per_class": per_class, "logits": out.numpy().tolist()}
    with open(os.path.join(work, "ref.json"), "w") as f:
        json.dump(ref, f)
    return 0


def cmd_eval_check(work, got_path, logits_path=None):
    ref = json.load(open(os.path.join(work, "ref.json")))
    got = json.load(open(got_path))
    ok = got["n"] == ref["n"]
    print(f"{'ok ' if ok else 'BAD'} n {got['n']} vs {ref['n']}")
    for k, tol in (("top1", 1e-6), ("top5", 1e-6), ("loss", 1e-5)):
        good = abs(got[k] - ref[k]) <= tol * max(1.0, abs(ref[k]))
        print(f"{'ok ' if good else 'BAD'} {k} {got[k]} vs {ref[k]}")
        ok &= good
    for c, v in ref["per_class"].items():
        g = got["per_class"].get(c, "missing")
        good = (v is None and g is None) or (v is not None and g is not None and abs(g - v) < 1e-6)
        ok &= good
        if not good:
            print(f"BAD per_class {c}: {g} vs {v}")
    if logits_path:
        recs = stream_read(logits_path)
        lg = np.concatenate([r[0]["logits"] for r in recs])
        lb = np.concatenate([r[0]["label"] for r in recs])
        ok &= report("logits stream", np.array(ref["logits"]), lg[lb >= 0], 1e-5)
    return 0 if ok else 1


def cmd_learnable(work, dtype="f32", D=32):
    """A task a probe can learn: noise tokens, with the class's signature
    vector added to one token at a random place; train and val streams
    (features D wide, no aim.config: as another tool would write them)."""
    rng = np.random.default_rng(5)
    C, K = 5, 8
    sig = rng.normal(0, 1, (C, D)) * 1.5
    classes = [f"c{i}" for i in range(C)]
    for name, n in (("train", 1000), ("val", 300)):
        recs = []
        for start in range(0, n, 96):
            B = min(96, n - start)
            x = rng.normal(0, 1, (B, K, D))
            y = rng.integers(0, C, B)
            where = rng.integers(0, K, B)
            x[np.arange(B), where] += sig[y]
            meta = {"aim.classes": json.dumps(classes), "aim.model": "synthetic"} if start == 0 else {}
            recs.append(({"features": x.astype(np.float16 if dtype == "f16" else np.float32),
                          "label": y.astype(np.int64),
                          "id": np.arange(start, start + B, dtype=np.int64)}, meta))
        stream_write(os.path.join(work, name + ".aimt"), recs)
    return 0


# ---- end to end: images -> torchvision val transform -> AIM trunk -> head ----
def sincos_2d(rows, cols, D):
    """The fixed table of the published code: first D/2 columns from the
    patch's column index, last D/2 from its row index, [sin, cos] each."""
    def one(dim, pos):
        omega = 1.0 / 10000 ** (torch.arange(dim // 2).float() / (dim / 2.0))
        out = pos.reshape(-1)[:, None] * omega[None, :]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)
    r, c = torch.meshgrid(torch.arange(rows).float(), torch.arange(cols).float(), indexing="ij")
    return torch.cat([one(D // 2, c), one(D // 2, r)], dim=1)


class RefBlock(torch.nn.Module):
    def __init__(self, D, H):
        super().__init__()
        self.H = H
        self.norm_1 = torch.nn.LayerNorm(D, eps=1e-6)
        self.norm_2 = torch.nn.LayerNorm(D, eps=1e-6)
        self.qkv = torch.nn.Linear(D, 3 * D, bias=False)
        self.proj = torch.nn.Linear(D, D, bias=False)
        self.fc1 = torch.nn.Linear(D, 4 * D, bias=False)
        self.fc2 = torch.nn.Linear(4 * D, D, bias=False)

    def forward(self, x):
        B, N, D = x.shape
        H, hd = self.H, D // self.H
        q, k, v = self.qkv(self.norm_1(x)).reshape(B, N, 3, H, hd).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(B, N, D))
        return x + self.fc2(F.gelu(self.fc1(self.norm_2(x))))


class RefAIM(torch.nn.Module):
    def __init__(self, C, p, D, depth, H, probe_layers, classes):
        super().__init__()
        self.p, self.probe_layers = p, probe_layers
        self.conv = torch.nn.Conv2d(C, D, p, p)
        self.pnorm = torch.nn.LayerNorm(D, eps=1e-6)
        self.blocks = torch.nn.ModuleList([RefBlock(D, H) for _ in range(depth)])
        self.post = torch.nn.LayerNorm(D, eps=1e-6)
        self.head = AttentiveHead(D, classes, H, 1, False)

    def forward(self, img):
        x = self.pnorm(self.conv(img).flatten(2).transpose(1, 2))
        x = x + sincos_2d(img.shape[2] // self.p, img.shape[3] // self.p, x.shape[2])[None]
        feats = []
        for blk in self.blocks:
            x = blk(x)
            feats.append(x)
        avg = torch.stack([feats[i] for i in self.probe_layers], -1).mean(-1)
        return self.head(avg)

    def published_state(self):
        t = {"preprocessor.patchifier.proj.weight": self.conv.weight,
             "preprocessor.patchifier.proj.bias": self.conv.bias,
             "preprocessor.patchifier.norm.weight": self.pnorm.weight,
             "preprocessor.patchifier.norm.bias": self.pnorm.bias,
             "trunk.post_trunk_norm.weight": self.post.weight,
             "trunk.post_trunk_norm.bias": self.post.bias}
        for i, b in enumerate(self.blocks):
            pre = f"trunk.blocks.{i}."
            t.update({pre + "norm_1.weight": b.norm_1.weight, pre + "norm_1.bias": b.norm_1.bias,
                      pre + "attn.qkv.weight": b.qkv.weight, pre + "attn.proj.weight": b.proj.weight,
                      pre + "norm_2.weight": b.norm_2.weight, pre + "norm_2.bias": b.norm_2.bias,
                      pre + "mlp.fc1.weight": b.fc1.weight, pre + "mlp.fc2.weight": b.fc2.weight})
        t = {k: v.detach().numpy() for k, v in t.items()}
        t.update(head_tensors(self.head))
        return t


def cmd_e2e_case(work):
    """Random images in an ImageFolder tree, a random model + head in the
    Hugging Face layout (config.json + model.safetensors, published names),
    and the reference: torchvision's val transform, the model, utils.accuracy
    and CrossEntropyLoss, as main_attnprobe.py evaluates."""
    from PIL import Image
    from torchvision import datasets, transforms
    torch.manual_seed(7)
    rng = np.random.default_rng(8)
    size, p, D, depth, H, classes = 28, 7, 32, 3, 2, 6
    root = os.path.join(work, "val")
    names = [f"n0{i}" for i in range(classes)]
    for ci, name in enumerate(names):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for j in range(3):
            w, h = int(rng.integers(30, 60)), int(rng.integers(30, 60))
            img = (rng.random((h // 4 + 1, w // 4 + 1, 3)) * 255).astype(np.uint8)
            im = Image.fromarray(img).resize((w, h), Image.BILINEAR)
            ext = "png" if j % 2 else "jpg"
            im.save(os.path.join(root, name, f"img{j}.{ext}"))
    m = RefAIM(3, p, D, depth, H, [1, 2], classes)
    with torch.no_grad():
        for prm in m.parameters():
            prm.add_(torch.randn_like(prm) * 0.05)
        randomise_bn(m.head, D, rng)
        m.head.linear.weight.mul_(4)
    hf = os.path.join(work, "hf")
    os.makedirs(hf, exist_ok=True)
    st_write(os.path.join(hf, "model.safetensors"), m.published_state())
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump({"img_size": size, "patch_size": p, "embed_dim": D, "num_blocks": depth,
                   "num_heads": H, "num_channels": 3, "probe_layers": [1, 2],
                   "num_classes": classes}, f)
    # the same weights as PyTorch checkpoints, as the release ships them: a
    # backbone .pth (config.json beside it) and a separate head .pth
    pth = os.path.join(work, "pth")
    os.makedirs(pth, exist_ok=True)
    state = {k: torch.tensor(v) for k, v in m.published_state().items()}
    torch.save({k: v for k, v in state.items() if not k.startswith("head.")},
               os.path.join(pth, "backbone.pth"))
    torch.save({k: v for k, v in state.items() if k.startswith("head.")},
               os.path.join(pth, "head.pth"))
    with open(os.path.join(hf, "config.json")) as f_in, open(os.path.join(pth, "config.json"), "w") as f_out:
        f_out.write(f_in.read())
    tf = transforms.Compose([
        transforms.Resize(math.ceil(size / 0.875), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    ds = datasets.ImageFolder(root, transform=tf)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    m.eval()
    with torch.no_grad():
        out = m(x)
    top1, top5 = accuracy(out, y, (1, 5))
    loss = F.cross_entropy(out, y).item()
    pred = out.argmax(1)
    per_class = {names[c]: 100.0 * (pred[y == c] == c).double().mean().item() for c in range(classes)}
    with open(os.path.join(work, "ref.json"), "w") as f:
        json.dump({"n": len(ds), "top1": top1, "top5": top5, "loss": loss,
                   "per_class": per_class, "logits": out.numpy().tolist()}, f)
    print(f"reference: n {len(ds)} top-1 {top1:.3f} top-5 {top5:.3f} loss {loss:.4f}")
    return 0


# ---- a whole training run: schedule, AdamW groups, BN running statistics ----
def cmd_train_case(work, kind):
    """Features, an initial head (for aim-probe --init) and the reference:
    full-batch training for 4 epochs, AdamW with decay on the weight
    matrices only, label smoothing 0.1, one epoch of linear warmup then a
    cosine to zero, the rate of each step taken at the middle of its epoch."""
    torch.manual_seed(3)
    rng = np.random.default_rng(4)
    N, K, D, C, H, Q = 40, 6, 24, 4, 3, 2
    epochs, lr, wd, smooth, warmup = 4, 1e-2, 0.05, 0.1, 1.0
    x = rng.normal(0, 1, (N, K, D)).astype(np.float32)
    y = rng.integers(0, C, N).astype(np.int64)
    x[np.arange(N), 0, :C] += 2 * np.eye(C)[y]
    stream_write(os.path.join(work, "feat.aimt"), [({"features": x, "label": y}, {})])
    if kind == "attentive":
        m = AttentiveHead(D, C, H, Q, False)
        meta = {"aim.head": json.dumps({"probe": "attentive", "dim": D, "classes": C,
                                        "heads": H, "queries": Q})}
    else:
        m = LinearHead(D, C, True)
        meta = {"aim.head": json.dumps({"probe": "linear", "dim": D, "classes": C})}
    with torch.no_grad():
        randomise_bn(m, D, rng)
    st_write(os.path.join(work, "head0.safetensors"), head_tensors(m), meta)
    params = dict(m.named_parameters())
    opt = torch.optim.AdamW([
        {"params": [p for n, p in params.items() if n.endswith("weight")], "weight_decay": wd},
        {"params": [p for n, p in params.items() if not n.endswith("weight")], "weight_decay": 0.0}],
        lr=lr)
    xt, yt = torch.tensor(x), torch.tensor(y)
    m.train()
    for e in range(epochs):
        t = e + 0.5
        f = t / warmup if t < warmup else 0.5 * (1 + math.cos(math.pi * (t - warmup) / (epochs - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr * f
        loss = F.cross_entropy(m(xt), yt, label_smoothing=smooth)
        opt.zero_grad()
        loss.backward()
        opt.step()
    st_write(os.path.join(work, "ref.safetensors"), head_tensors(m))
    return 0


def cmd_compare_heads(ref_path, got_path, tol):
    ref, _ = st_read(ref_path)
    got, _ = st_read(got_path)
    ok = set(ref) == set(got)
    if not ok:
        print("BAD tensor names differ:", sorted(set(ref) ^ set(got)))
    for name in sorted(set(ref) & set(got)):
        ok &= report(name, ref[name].astype(np.float64).reshape(-1),
                     got[name].astype(np.float64).reshape(-1), tol)
    return 0 if ok else 1


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "head":
        sys.exit(cmd_head(a[1], int(a[2]), a[3] == "1", a[4], a[5]))
    if a and a[0] == "eval-case":
        sys.exit(cmd_eval_case(a[1], a[2], np.float16 if a[3] == "f16" else np.float32))
    if a and a[0] == "eval-check":
        sys.exit(cmd_eval_check(a[1], a[2], a[3] if len(a) > 3 else None))
    if a and a[0] == "train-case":
        sys.exit(cmd_train_case(a[1], a[2]))
    if a and a[0] == "compare-heads":
        sys.exit(cmd_compare_heads(a[1], a[2], float(a[3])))
    if a and a[0] == "e2e-case":
        sys.exit(cmd_e2e_case(a[1]))
    if a and a[0] == "learnable":
        sys.exit(cmd_learnable(a[1], a[2] if len(a) > 2 else "f32", int(a[3]) if len(a) > 3 else 32))
    print(__doc__)
    sys.exit(2)
