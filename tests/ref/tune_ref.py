#!/usr/bin/python3
"""PyTorch reference of adapting the AIM trunk of both families (AIM v1:
LayerNorm, GELU MLP, sin-cos positions, features without the post-trunk
norm; AIMv2: RMSNorm, SwiGLU MLP fc2(silu(fc1 h) * fc3 h), a learned
position table, no biases, features = the post-trunk RMSNorm of the averaged
blocks, as the published encoder and its probes read them), written for the
tests from the methods' definitions, independent of the C code:

  - LoRA with Hugging Face peft's semantics (reimplemented here, peft is not
    imported): a targeted nn.Linear computes W x + b + (alpha / r) B (A x)
    (alpha / sqrt(r) with use_rslora); modules are chosen as peft's
    check_target_module_exists does (a list names modules exactly or by a
    suffix after a dot; a string is a regular expression matched in full);
    the adapter directory is adapter_config.json + adapter_model.safetensors
    with base_model.model.<module>.lora_A.weight [r, in] / .lora_B.weight
    [out, r];
  - bottleneck adapters (Houlsby) on each block's MLP output:
    m + up(GELU(down(m))) before the residual add;
  - prompt tokens (VPT): prepended after the positions, replaced before every
    block when deep, dropped before pooling;
  - the attentive probe head in training mode (BatchNorm1d batch statistics)
    and the label-smoothed cross-entropy, averaged over micro-batches
    weighted by their size.

Sub-commands:
  make DIR [--v2]  a random model, head, patches stream and adapters of
                   every kind (written by this side); --v2: an AIMv2 model
                   (also in the ml-aim Hugging Face layout, DIR/mlaim) with
                   LoRA on fc3 too
  check DIR KIND ADAPTER DUMP --layers L --micro M
                   a dump of test_tune: logits, loss, every trainable
                   gradient (1e-4 relative), inference features (1e-4) and
                   merged = unmerged features (1e-5)
  eval-logits DIR ADAPTER HEAD LOGITS   logits of aim-eval for an adapter
                   written by aim-probe, recomputed here
"""
import json
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aim_ref  # noqa: E402
from aim_ref import read_st, read_stream, sincos_2d, st_bytes, write_stream  # noqa: E402

aim_ref.need_torch()

torch.set_default_dtype(torch.float64)
TARGETS = ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "mlp.fc3"]


def is_v2(mcfg):
    return mcfg.get("norm") == "rmsnorm"


def write_st(path, tensors, meta=None):
    with open(path, "wb") as f:
        f.write(st_bytes({k: np.ascontiguousarray(v, np.float32) if v.dtype != np.int64 else v
                          for k, v in tensors.items()}, meta))


# ---- peft's module matching -------------------------------------------------

def peft_match(target_modules, key):
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, key) is not None
    if key in target_modules:
        return True
    return any(key.endswith("." + t) for t in target_modules)


def read_adapter(path):
    """(config, tensors) of an adapter directory."""
    with open(os.path.join(path, "adapter_config.json")) as f:
        cfg = json.load(f)
    t, meta = read_st(os.path.join(path, "adapter_model.safetensors"))
    return cfg, {k: torch.from_numpy(v.astype(np.float64)) for k, v in t.items()}, meta


def lora_modules(cfg, tensors, depth):
    """{module: (A, B)} for the modules peft would adapt and the file holds."""
    out = {}
    for i in range(depth):
        for t in TARGETS:
            key = "trunk.blocks.%d.%s" % (i, t)
            a = "base_model.model.%s.lora_A.weight" % key
            if peft_match(cfg["target_modules"], key) and a in tensors:
                out[key] = (tensors[a], tensors["base_model.model.%s.lora_B.weight" % key])
    return out


# ---- the adapted trunk --------------------------------------------------------

def ln(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-6)


def rms(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def norm_of(mcfg):
    """The family's norm: (x, sd, name) -> normed x."""
    if is_v2(mcfg):
        eps = mcfg.get("norm_eps", 1e-5)
        return lambda x, sd, n: rms(x, sd[n + ".weight"], eps)
    return lambda x, sd, n: ln(x, sd[n + ".weight"], sd[n + ".bias"])


def trunk(sd, mcfg, patches, rows, cols, kind=None, acfg=None, ad=None, drop=None):
    """patches [B, K, P] -> list of block outputs [B, K, D] (patch tokens).
    drop: stochastic depth, [depth, 2, B] factors of each block's attention
    and MLP branch per sample (timm's DropPath: x + branch * factor)."""
    D, H, depth = mcfg["embed_dim"], mcfg["num_heads"], mcfg["num_blocks"]
    hd = D // H
    opt = lambda n: sd.get(n)
    lora = {}
    scale = 0.0
    if kind == "lora":
        lora = lora_modules(acfg, ad, depth)
        r = acfg["r"]
        scale = acfg["lora_alpha"] / (math.sqrt(r) if acfg.get("use_rslora") else r)

    def linear(x, key, bias=True):
        y = F.linear(x, sd[key + ".weight"], opt(key + ".bias") if bias else None)
        if key in lora:
            A, Bm = lora[key]
            y = y + scale * F.linear(F.linear(x, A), Bm)
        return y

    N = norm_of(mcfg)
    W = sd["preprocessor.patchifier.proj.weight"].reshape(D, -1)
    x = patches @ W.T + sd["preprocessor.patchifier.proj.bias"]
    x = N(x, sd, "preprocessor.patchifier.norm")
    if "preprocessor.pos_embed" in sd:
        x = x + sd["preprocessor.pos_embed"]
    else:
        x = x + sincos_2d(rows, cols, D).to(x.dtype)[None]
    B = x.shape[0]
    Np = 0
    if kind == "prompt":
        P = ad["prompt.tokens"]
        Np = P.shape[1]
        x = torch.cat([P[0].expand(B, -1, -1), x], 1)
    outs = []
    for i in range(depth):
        pre = "trunk.blocks.%d." % i
        if kind == "prompt" and i > 0 and acfg.get("deep"):
            x = torch.cat([ad["prompt.tokens"][i].expand(B, -1, -1), x[:, Np:]], 1)
        K = x.shape[1]
        h = N(x, sd, pre + "norm_1")
        qkv = linear(h, pre + "attn.qkv", bias=False).reshape(B, K, 3, H, hd).permute(2, 0, 3, 1, 4)
        a = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) / math.sqrt(hd), -1) @ qkv[2]
        branch = linear(a.transpose(1, 2).reshape(B, K, D), pre + "attn.proj")
        x = x + (branch if drop is None else branch * drop[i, 0][:, None, None])
        h = N(x, sd, pre + "norm_2")
        if is_v2(mcfg):
            m = linear(F.silu(linear(h, pre + "mlp.fc1")) * linear(h, pre + "mlp.fc3"), pre + "mlp.fc2")
        else:
            m = linear(F.gelu(linear(h, pre + "mlp.fc1")), pre + "mlp.fc2")
        if kind == "adapter":
            q = "adapter.blocks.%d." % i
            m = m + F.linear(F.gelu(F.linear(m, ad[q + "down.weight"], ad[q + "down.bias"])),
                             ad[q + "up.weight"], ad[q + "up.bias"])
        x = x + (m if drop is None else m * drop[i, 1][:, None, None])
        outs.append(x[:, Np:])
    return outs


def features(outs, layers, sd=None, mcfg=None):
    """The probe's features: the chosen blocks averaged; for AIMv2 through
    the post-trunk RMSNorm."""
    f = torch.stack([outs[l] for l in layers], 0).mean(0)
    if mcfg is not None and is_v2(mcfg):
        f = norm_of(mcfg)(f, sd, "trunk.post_trunk_norm")
    return f


def head_train(hd, x, heads):
    """Attentive head, BatchNorm1d in training mode (batch statistics)."""
    B, N, D = x.shape
    flat = x.reshape(-1, D)
    mu = flat.mean(0)
    var = flat.var(0, unbiased=False)
    xh = (x - mu) / torch.sqrt(var + 1e-6)
    q = hd["head.cls_token"]
    Q = q.shape[1]
    hdim = D // heads
    qq = q.expand(B, -1, -1).reshape(B, Q, heads, hdim).permute(0, 2, 1, 3)
    k = F.linear(xh, hd["head.k.weight"]).reshape(B, N, heads, hdim).permute(0, 2, 1, 3)
    v = F.linear(xh, hd["head.v.weight"]).reshape(B, N, heads, hdim).permute(0, 2, 1, 3)
    a = torch.softmax(qq @ k.transpose(-2, -1) / math.sqrt(hdim), -1) @ v
    z = a.transpose(1, 2).reshape(B, Q, D).mean(1)
    return F.linear(z, hd["head.linear.weight"], hd.get("head.linear.bias"))


def head_eval(hd, x, heads):
    """Attentive head with running statistics (aim-eval)."""
    B, N, D = x.shape
    xh = (x - hd["head.bn.running_mean"]) / torch.sqrt(hd["head.bn.running_var"] + 1e-6)
    q = hd["head.cls_token"]
    Q, hdim = q.shape[1], D // heads
    qq = q.expand(B, -1, -1).reshape(B, Q, heads, hdim).permute(0, 2, 1, 3)
    k = F.linear(xh, hd["head.k.weight"]).reshape(B, N, heads, hdim).permute(0, 2, 1, 3)
    v = F.linear(xh, hd["head.v.weight"]).reshape(B, N, heads, hdim).permute(0, 2, 1, 3)
    a = torch.softmax(qq @ k.transpose(-2, -1) / math.sqrt(hdim), -1) @ v
    z = a.transpose(1, 2).reshape(B, Q, D).mean(1)
    return F.linear(z, hd["head.linear.weight"], hd.get("head.linear.bias"))


# ---- files ------------------------------------------------------------------------

def load_dir(d):
    t, meta = read_st(os.path.join(d, "model.safetensors"))
    mcfg = json.loads(meta["aim.config"])
    sd = {k: torch.from_numpy(v.astype(np.float64)) for k, v in t.items() if not k.startswith("head.")}
    return sd, mcfg


def load_head(path):
    t, _ = read_st(path)
    return {k: torch.from_numpy(v.astype(np.float64)) for k, v in t.items()
            if v.dtype != np.int64}


def load_patches(path, mcfg):
    recs = read_stream(path)
    t, meta = recs[0]
    rows, cols = json.loads(meta["aim.grid"])
    return torch.from_numpy(t["patches"].astype(np.float64)), torch.from_numpy(t["label"]), rows, cols


def cmd_make(d, v2=False, wide=False):
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(5 + 6 * v2)
    rn = lambda *s, scale=1.0: (torch.randn(*s, generator=g, dtype=torch.float32) * scale).numpy()
    D, depth, H, Hm, p, C, rows, cols = 16, 3, 2, 24, 2, 3, 3, 2
    if v2:  # a square grid: the ml-aim config.json has one image_size
        rows, cols, Hm = 3, 3, 20
    if wide:  # every trunk product at least AIM_BF16_MIN_WIDTH wide: bf16 really rounds
        D, Hm = 48, 72
    mcfg = {"img_size": [rows * p, cols * p], "patch_size": p, "embed_dim": D,
            "num_blocks": depth, "num_heads": H, "num_channels": C, "probe_layers": 2,
            "num_classes": 4, "mlp_hidden_dim": Hm, "use_bias": not v2}
    if v2:
        mcfg.update({"norm": "rmsnorm", "mlp": "swiglu", "pos_embed": "learned", "norm_eps": 1e-5,
                     "probe_layers": 1, "num_classes": 0})
    if v2:  # AIMv2: RMSNorm weights only, no biases but the patch conv's, fc3
        sd = {"preprocessor.patchifier.proj.weight": rn(D, C, p, p, scale=1 / math.sqrt(C * p * p)),
              "preprocessor.patchifier.proj.bias": rn(D, scale=0.1),
              "preprocessor.patchifier.norm.weight": 1 + rn(D, scale=0.1),
              "preprocessor.pos_embed": rn(1, rows * cols, D, scale=0.5),
              "trunk.post_trunk_norm.weight": 1 + rn(D, scale=0.1)}
        for i in range(depth):
            q = "trunk.blocks.%d." % i
            sd.update({q + "norm_1.weight": 1 + rn(D, scale=0.1),
                       q + "attn.qkv.weight": rn(3 * D, D, scale=1 / math.sqrt(D)),
                       q + "attn.proj.weight": rn(D, D, scale=0.5 / math.sqrt(D)),
                       q + "norm_2.weight": 1 + rn(D, scale=0.1),
                       q + "mlp.fc1.weight": rn(Hm, D, scale=1 / math.sqrt(D)),
                       q + "mlp.fc3.weight": rn(Hm, D, scale=1 / math.sqrt(D)),
                       q + "mlp.fc2.weight": rn(D, Hm, scale=0.5 / math.sqrt(Hm))})
        # the same model in the ml-aim Hugging Face layout (config.json keys of the release)
        os.makedirs(os.path.join(d, "mlaim"), exist_ok=True)
        with open(os.path.join(d, "mlaim", "config.json"), "w") as f:
            json.dump({"model_type": "aimv2", "hidden_size": D, "intermediate_size": Hm,
                       "num_hidden_layers": depth, "num_attention_heads": H, "num_channels": C,
                       "image_size": rows * p, "patch_size": p, "rms_norm_eps": 1e-5,
                       "qkv_bias": False, "use_bias": False}, f)
        write_st(os.path.join(d, "mlaim", "model.safetensors"), sd)
    else:
        sd = {"preprocessor.patchifier.proj.weight": rn(D, C, p, p, scale=1 / math.sqrt(C * p * p)),
              "preprocessor.patchifier.proj.bias": rn(D, scale=0.1),
              "preprocessor.patchifier.norm.weight": 1 + rn(D, scale=0.1),
              "preprocessor.patchifier.norm.bias": rn(D, scale=0.1),
              "trunk.post_trunk_norm.weight": 1 + rn(D, scale=0.1),
              "trunk.post_trunk_norm.bias": rn(D, scale=0.1)}
        for i in range(depth):
            q = "trunk.blocks.%d." % i
            sd.update({q + "norm_1.weight": 1 + rn(D, scale=0.1), q + "norm_1.bias": rn(D, scale=0.1),
                       q + "attn.qkv.weight": rn(3 * D, D, scale=1 / math.sqrt(D)),
                       q + "attn.proj.weight": rn(D, D, scale=0.5 / math.sqrt(D)),
                       q + "attn.proj.bias": rn(D, scale=0.1),
                       q + "norm_2.weight": 1 + rn(D, scale=0.1), q + "norm_2.bias": rn(D, scale=0.1),
                       q + "mlp.fc1.weight": rn(Hm, D, scale=1 / math.sqrt(D)),
                       q + "mlp.fc1.bias": rn(Hm, scale=0.1),
                       q + "mlp.fc2.weight": rn(D, Hm, scale=0.5 / math.sqrt(Hm)),
                       q + "mlp.fc2.bias": rn(D, scale=0.1)})
    write_st(os.path.join(d, "model.safetensors"), sd, {"aim.config": json.dumps(mcfg)})
    ncls = 4
    head = {"head.bn.running_mean": rn(D, scale=0.3),
            "head.bn.running_var": (0.5 + torch.rand(D, generator=g)).float().numpy(),
            "head.bn.num_batches_tracked": np.array(3, dtype=np.int64),
            "head.cls_token": rn(1, 2, D, scale=0.5),
            "head.k.weight": rn(D, D, scale=1 / math.sqrt(D)),
            "head.v.weight": rn(D, D, scale=1 / math.sqrt(D)),
            "head.linear.weight": rn(ncls, D, scale=1 / math.sqrt(D)),
            "head.linear.bias": rn(ncls, scale=0.1)}
    write_st(os.path.join(d, "head.safetensors"), head,
             {"aim.head": json.dumps({"probe": "attentive", "dim": D, "classes": ncls,
                                      "heads": H, "queries": 2})})
    B = 6
    patches = rn(B, rows * cols, C * p * p)
    meta = {"aim.patch": str(p), "aim.grid": json.dumps([rows, cols]), "aim.channels": str(C),
            "aim.classes": json.dumps(["a", "b", "c", "d"])}
    write_stream(os.path.join(d, "patches.aimt"),
                 [({"patches": patches, "label": np.array([0, 1, 2, 3, 1, 2], dtype=np.int64)}, meta)])
    inn = {"attn.qkv": (D, 3 * D), "attn.proj": (D, D), "mlp.fc1": (D, Hm), "mlp.fc2": (Hm, D),
           "mlp.fc3": (D, Hm)}

    def lora(name, cfg, modules, r):
        t = {}
        for i, m in modules:
            a, b = inn[m]
            key = "base_model.model.trunk.blocks.%d.%s" % (i, m)
            t[key + ".lora_A.weight"] = rn(r, a, scale=1 / math.sqrt(a))
            t[key + ".lora_B.weight"] = rn(b, r, scale=0.3)
        os.makedirs(os.path.join(d, name), exist_ok=True)
        with open(os.path.join(d, name, "adapter_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        write_st(os.path.join(d, name, "adapter_model.safetensors"), t, {"format": "pt"})

    allm = [(i, m) for i in range(depth) for m in TARGETS if v2 or m != "mlp.fc3"]
    # suffixes in both forms, every block; block 1 without fc2
    lora("lora", {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "bias": "none",
                  "target_modules": ["qkv", "attn.proj", "fc1", "mlp.fc2"] + ["fc3"] * v2,
                  "lora_dropout": 0.05,
                  "task_type": None, "use_rslora": False},
         [x for x in allm if x != (1, "mlp.fc2")], 4)
    # a regular expression and rslora; full module paths
    lora("lora_re", {"peft_type": "LORA", "r": 3, "lora_alpha": 5, "bias": "none",
                     "target_modules": r"trunk\.blocks\.[01]\.(attn\.qkv|mlp\.fc[13])",
                     "use_rslora": True},
         [(i, m) for i in (0, 1) for m in ("attn.qkv", "mlp.fc1") + ("mlp.fc3",) * v2], 3)
    a = 5
    t = {}
    for i in range(depth):
        q = "adapter.blocks.%d." % i
        t.update({q + "down.weight": rn(a, D, scale=0.4), q + "down.bias": rn(a, scale=0.1),
                  q + "up.weight": rn(D, a, scale=0.3), q + "up.bias": rn(D, scale=0.1)})
    os.makedirs(os.path.join(d, "adapter"), exist_ok=True)
    with open(os.path.join(d, "adapter", "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "AIM_ADAPTER", "adapter_dim": a}, f)
    write_st(os.path.join(d, "adapter", "adapter_model.safetensors"), t)
    for name, n, deep in (("prompt", 3, False), ("deep", 2, True)):
        os.makedirs(os.path.join(d, name), exist_ok=True)
        with open(os.path.join(d, name, "adapter_config.json"), "w") as f:
            json.dump({"peft_type": "AIM_PROMPT", "num_virtual_tokens": n, "deep": deep}, f)
        write_st(os.path.join(d, name, "adapter_model.safetensors"),
                 {"prompt.tokens": rn(depth if deep else 1, n, D, scale=0.5)})


def report(name, ref, got, tol):
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    err = np.max(np.abs(ref - got)) / (np.max(np.abs(ref)) + 1e-30)
    ok = err <= tol and np.max(np.abs(ref)) > 0
    print(f"{'ok ' if ok else 'BAD'} {name:60s} rel err {err:.2e} (tol {tol:.0e})")
    return ok


def cmd_check(d, kind, adapter, dump, layers, micro):
    sd, mcfg = load_dir(d)
    head = load_head(os.path.join(d, "head.safetensors"))
    x, y, rows, cols = load_patches(os.path.join(d, "patches.aimt"), mcfg)
    acfg, ad = None, {}
    if kind not in ("full", "none"):
        acfg, ad, _ = read_adapter(adapter)
    got, _ = read_st(dump)
    ok = True
    # inference features (no gradient)
    with torch.no_grad():
        f = features(trunk(sd, mcfg, x, rows, cols, kind, acfg, ad), layers, sd, mcfg)
    ok &= report("features (inference)", f.numpy(), got["features"], 1e-4)
    if kind == "lora":
        ok &= report("features merged vs unmerged", got["features"], got["features.merged"], 1e-5)
    # one joint step: every trainable tensor a leaf
    train = {}
    if kind == "full":
        for k in sd:
            if (k.startswith("trunk.post_trunk_norm") and not is_v2(mcfg)) or (
                    k.startswith("trunk.blocks.") and int(k.split(".")[2]) > max(layers)):
                continue
            sd[k] = sd[k].clone().requires_grad_(True)
            train[k] = sd[k]
    elif kind != "none":
        for k in ad:
            ad[k] = ad[k].clone().requires_grad_(True)
            if kind != "lora" or any(k == "base_model.model.%s.lora_%s.weight" % (m, ab)
                                     for m in lora_modules(acfg, ad, mcfg["num_blocks"])
                                     for ab in "AB"):
                train[k] = ad[k]
    for k in ("head.cls_token", "head.k.weight", "head.v.weight", "head.linear.weight",
              "head.linear.bias"):
        head[k] = head[k].clone().requires_grad_(True)
        train[k] = head[k]
    n = x.shape[0]
    loss, logits = 0, []
    drop = torch.from_numpy(got["drop.factors"]) if "drop.factors" in got else None
    if drop is not None:
        rate = drop.eq(0).float().mean().item()
        print(f"stochastic depth: {rate:.0%} of the branches dropped")
    for s in range(0, n, micro):
        xb, yb = x[s:s + micro], y[s:s + micro]
        db = None if drop is None else drop[:, :, s:s + micro]
        fb = features(trunk(sd, mcfg, xb, rows, cols, kind, acfg, ad, db), layers, sd, mcfg)
        lg = head_train(head, fb, mcfg["num_heads"])
        logits.append(lg)
        loss = loss + F.cross_entropy(lg, yb, label_smoothing=0.1) * (xb.shape[0] / n)
    loss.backward()
    ok &= report("logits (training mode)", torch.cat(logits).detach().numpy(), got["logits"], 1e-4)
    ok &= report("loss", [loss.item()], got["loss"], 1e-5)
    # the largest gradient of the step: the scale of float32 round-off in
    # gradients the head's BatchNorm all but cancels
    gscale = max(float(v.grad.abs().max()) for v in train.values() if v.grad is not None)
    for k, v in train.items():
        gk = "grad." + k
        if gk not in got:
            print("BAD no gradient for", k)
            ok = False
            continue
        g = v.grad
        if g is None:  # above the features: the C side must not have touched it
            good = not np.any(got[gk])
            print(f"{'ok ' if good else 'BAD'} {gk:60s} zero (not reached)")
            ok &= good
        elif g.abs().max() < 1e-12:  # zero in exact arithmetic (a BatchNorm removes it)
            good = np.max(np.abs(got[gk])) < 1e-5
            print(f"{'ok ' if good else 'BAD'} {gk:60s} zero in exact arithmetic, got "
                  f"{np.max(np.abs(got[gk])):.1e}")
            ok &= good
        elif g.abs().max() < 1e-4 * gscale:
            # AIMv2's post-trunk norm weight: the head's BatchNorm cancels a
            # per-channel scale but for its eps, so the gradient is ~1e-6 of
            # the others and float32 round-off decides its digits; held to
            # 1e-4 of the step's largest gradient
            err = np.max(np.abs(g.numpy().reshape(-1) - got[gk].reshape(-1))) / gscale
            good = err <= 1e-4
            print(f"{'ok ' if good else 'BAD'} {gk:60s} nearly cancelled (|g| "
                  f"{g.abs().max():.1e}): err {err:.2e} of the largest gradient (tol 1e-04)")
            ok &= good
        else:
            ok &= report(gk, g.numpy(), got[gk], 1e-4)
    extra = [k for k in got if k.startswith("grad.") and k[5:] not in train]
    for k in extra:
        if np.any(got[k]):
            print("BAD", k, "is not trainable here but has a gradient")
            ok = False
    sys.exit(0 if ok else 1)


def cmd_eval_logits(d, adapter, headp, logits_path, layers):
    """Logits of the adapted model and head (aim-eval -m --adapter) against these."""
    sd, mcfg = load_dir(d)
    head = load_head(headp)
    x, y, rows, cols = load_patches(os.path.join(d, "patches.aimt"), mcfg)
    acfg, ad, meta = read_adapter(adapter)
    kind = {"LORA": "lora", "AIM_ADAPTER": "adapter", "AIM_PROMPT": "prompt"}[acfg["peft_type"]]
    assert acfg.get("bias") in (None, "none")
    with torch.no_grad():
        f = features(trunk(sd, mcfg, x, rows, cols, kind, acfg, ad), layers, sd, mcfg)
        lg = head_eval(head, f, mcfg["num_heads"])
    got = np.concatenate([t["logits"] for t, _ in read_stream(logits_path)])
    sys.exit(0 if report("aim-eval logits vs reference (%s)" % kind, lg.numpy(), got, 1e-4) else 1)


def main():
    a = sys.argv[1:]
    if a[0] == "make":
        cmd_make(a[1], "--v2" in a, "--wide" in a)
    elif a[0] == "check":
        layers = [int(v) for v in a[a.index("--layers") + 1].split(",")]
        micro = int(a[a.index("--micro") + 1])
        cmd_check(a[1], a[2], a[3], a[4], layers, micro)
    elif a[0] == "eval-logits":
        layers = [int(v) for v in a[a.index("--layers") + 1].split(",")]
        cmd_eval_logits(a[1], a[2], a[3], a[4], layers)
    else:
        sys.exit("unknown sub-command " + a[0])


if __name__ == "__main__":
    main()
