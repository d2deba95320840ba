#!/usr/bin/python3
"""PyTorch reference of the AIMv2 image encoder, written for the tests from
the published architecture (apple/ml-aim aim-v2/aim/v2/torch/models.py and
layers.py, which build on aim-v1's Transformer), independent of the C code:

  - patch embedding: a stride-p Conv2d with bias on the IMAGE (the test cuts
    the patches itself), then RMSNorm (weight only, eps 1e-5);
  - positions: a learned table [1, N, D] added as is, or (the "native"
    models) the fixed 2-D sin-cos table of AIM v1 for any grid;
  - pre-norm blocks: x + proj(attn(qkv(RMS1 x))), x + fc2(silu(fc1 h) * fc3 h)
    with h = RMS2 x; qkv and the other linears with biases only when asked;
  - the post-trunk RMSNorm.

The same random model is written in three layouts: ml-aim (model_type
"aimv2", tensor names of the release), transformers (model_type
"aimv2_vision_model": q/k/v split, gate/up/down, an Embedding position
table [N, D]), timm (vision_transformer.py's aimv2 names, config.json with
"architecture" and "model_args").

Sub-commands:
  gen DIR ...        the model in DIR/{mlaim,hf,timm}, patches.aimt, ref.safetensors
                     (and, with --grid2 R C, patches2.aimt + ref2.safetensors)
  check DIR NAME KEY features.aimt   compare against ref (KEY blocks|normed)
  train-fixture OUT  model + masked outputs + autograd gradients (C unit test)
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aim_ref  # noqa: E402  (file formats and the sin-cos table)
from aim_ref import st_bytes, write_stream, read_st, features_of, images_to_patches  # noqa: E402

torch = F = None


def need_torch():
    global torch, F
    aim_ref.need_torch()
    torch, F = aim_ref.torch, aim_ref.F


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def trunk(sd, cfg, images, mask="none", prefix=None, dtype=None):
    """images [B, C, H, W] -> (block outputs [B, K, D] each, post-trunk norm of the last)."""
    dtype = dtype or torch.float64
    T = lambda n: sd[n].to(dtype)
    opt = lambda n: T(n) if n in sd else None
    p, D, H, eps = cfg["patch_size"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["rms_norm_eps"]
    x = F.conv2d(images.to(dtype), T("preprocessor.patchifier.proj.weight"),
                 T("preprocessor.patchifier.proj.bias"), stride=p)
    B, _, rows, cols = x.shape
    x = x.flatten(2).transpose(1, 2)
    x = rms(x, T("preprocessor.patchifier.norm.weight"), eps)
    if "preprocessor.pos_embed" in sd:
        x = x + T("preprocessor.pos_embed")
    else:
        x = x + aim_ref.sincos_2d(rows, cols, D).to(dtype)[None]
    K, hd = rows * cols, D // H
    bias = aim_ref.mask_bias(mask, K, prefix, B, dtype)
    outs = []
    for i in range(cfg["num_hidden_layers"]):
        pre = "trunk.blocks.%d." % i
        h = rms(x, T(pre + "norm_1.weight"), eps)
        qkv = F.linear(h, T(pre + "attn.qkv.weight"), opt(pre + "attn.qkv.bias"))
        qkv = qkv.reshape(B, K, 3, H, hd).permute(2, 0, 3, 1, 4)
        s = qkv[0] @ qkv[1].transpose(-2, -1) / math.sqrt(hd)
        if bias is not None:
            s = s + bias
        a = (torch.softmax(s, dim=-1) @ qkv[2]).transpose(1, 2).reshape(B, K, D)
        x = x + F.linear(a, T(pre + "attn.proj.weight"), opt(pre + "attn.proj.bias"))
        h = rms(x, T(pre + "norm_2.weight"), eps)
        g = F.silu(F.linear(h, T(pre + "mlp.fc1.weight"), opt(pre + "mlp.fc1.bias")))
        u = F.linear(h, T(pre + "mlp.fc3.weight"), opt(pre + "mlp.fc3.bias"))
        x = x + F.linear(g * u, T(pre + "mlp.fc2.weight"), opt(pre + "mlp.fc2.bias"))
        outs.append(x)
    return outs, rms(x, T("trunk.post_trunk_norm.weight"), eps)


def random_model(cfg, learned, qkv_bias, bias, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: (torch.randn(*s, generator=g) * scale).float()
    D, C, p = cfg["hidden_size"], cfg["num_channels"], cfg["patch_size"]
    Hm, n = cfg["intermediate_size"], cfg["num_hidden_layers"]
    N = (cfg["image_size"] // p) ** 2
    sd = {"preprocessor.patchifier.proj.weight": r(D, C, p, p, scale=1 / math.sqrt(C * p * p)),
          "preprocessor.patchifier.proj.bias": r(D, scale=0.1),
          "preprocessor.patchifier.norm.weight": 1 + r(D, scale=0.1)}
    if learned:
        sd["preprocessor.pos_embed"] = r(1, N, D, scale=0.5)
    for i in range(n):
        pre = "trunk.blocks.%d." % i
        sd[pre + "norm_1.weight"] = 1 + r(D, scale=0.1)
        sd[pre + "attn.qkv.weight"] = r(3 * D, D, scale=1 / math.sqrt(D))
        if qkv_bias:
            sd[pre + "attn.qkv.bias"] = r(3 * D, scale=0.1)
        sd[pre + "attn.proj.weight"] = r(D, D, scale=0.5 / math.sqrt(D))
        sd[pre + "norm_2.weight"] = 1 + r(D, scale=0.1)
        sd[pre + "mlp.fc1.weight"] = r(Hm, D, scale=1 / math.sqrt(D))
        sd[pre + "mlp.fc3.weight"] = r(Hm, D, scale=1 / math.sqrt(D))
        sd[pre + "mlp.fc2.weight"] = r(D, Hm, scale=0.5 / math.sqrt(Hm))
        if bias:
            sd[pre + "attn.proj.bias"] = r(D, scale=0.1)
            for fc, m in (("fc1", Hm), ("fc3", Hm), ("fc2", D)):
                sd[pre + "mlp.%s.bias" % fc] = r(m, scale=0.1)
    sd["trunk.post_trunk_norm.weight"] = 1 + r(D, scale=0.1)
    return sd


# ---- the layouts -------------------------------------------------------------

def to_transformers(sd):
    out = {}
    top = {"preprocessor.patchifier.proj.weight": "embeddings.patch_embed.weight",
           "preprocessor.patchifier.proj.bias": "embeddings.patch_embed.bias",
           "preprocessor.patchifier.norm.weight": "embeddings.rms_norm.weight",
           "trunk.post_trunk_norm.weight": "rms_norm.weight"}
    blk = {"norm_1.weight": "rms_norm1.weight", "norm_2.weight": "rms_norm2.weight",
           "attn.proj.weight": "attention.out_proj.weight", "attn.proj.bias": "attention.out_proj.bias",
           "mlp.fc1.weight": "ffn.gate_proj.weight", "mlp.fc1.bias": "ffn.gate_proj.bias",
           "mlp.fc3.weight": "ffn.up_proj.weight", "mlp.fc3.bias": "ffn.up_proj.bias",
           "mlp.fc2.weight": "ffn.down_proj.weight", "mlp.fc2.bias": "ffn.down_proj.bias"}
    for k, v in sd.items():
        if k in top:
            out[top[k]] = v
        elif k == "preprocessor.pos_embed":
            out["embeddings.position_embedding.weight"] = v[0]
        else:
            i, rest = k[len("trunk.blocks."):].split(".", 1)
            pre = "encoder.layers.%s." % i
            if rest.startswith("attn.qkv."):
                kind = rest.rsplit(".", 1)[1]
                for part, t in zip("qkv", torch.chunk(v, 3, dim=0)):
                    out[pre + "attention.%s_proj.%s" % (part, kind)] = t.contiguous()
            else:
                out[pre + blk[rest]] = v
    return out


def to_timm(sd):
    out = {}
    for k, v in sd.items():
        k = k.replace("norm_1", "norm1").replace("norm_2", "norm2")
        k = k.replace("preprocessor.patchifier.", "patch_embed.").replace("preprocessor.pos_embed", "pos_embed")
        k = k.replace("trunk.post_trunk_norm.", "norm.").replace("trunk.", "")
        k = k.replace("mlp.fc1", "mlp.fc1_g").replace("mlp.fc3", "mlp.fc1_x")
        out[k] = v
    return out


def write_layouts(d, sd, cfg, learned, qkv_bias, bias, fmt):
    def save(sub, tensors, config):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
        with open(os.path.join(d, sub, "config.json"), "w") as f:
            json.dump(config, f)
        if fmt == "bin":
            torch.save(tensors, os.path.join(d, sub, "pytorch_model.bin"))
        else:
            with open(os.path.join(d, sub, "model.safetensors"), "wb") as f:
                f.write(st_bytes({k: v.numpy() for k, v in tensors.items()}))
    base = {k: cfg[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                "num_attention_heads", "num_channels", "image_size", "patch_size",
                                "rms_norm_eps")}
    save("mlaim", sd, dict(base, model_type="aimv2", qkv_bias=bool(qkv_bias), use_bias=bool(bias),
                           architectures=["AIMv2Model"]))
    save("hf", to_transformers(sd), dict(base, model_type="aimv2_vision_model", qkv_bias=bool(qkv_bias),
                                         mlp_bias=bool(bias), is_native=not learned, use_head=False,
                                         hidden_act="silu", architectures=["Aimv2VisionModel"]))
    save("timm", to_timm(sd), {
        "architecture": "aimv2_large_patch14_224", "num_classes": 0,
        "model_args": {"img_size": cfg["image_size"], "patch_size": cfg["patch_size"],
                       "in_chans": cfg["num_channels"], "embed_dim": cfg["hidden_size"],
                       "depth": cfg["num_hidden_layers"], "num_heads": cfg["num_attention_heads"],
                       "mlp_ratio": cfg["intermediate_size"] / cfg["hidden_size"],
                       "qkv_bias": bool(qkv_bias), "proj_bias": bool(bias)},
        "pretrained_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                           "std": [0.26862954, 0.26130258, 0.27577711]}})


def patches_and_ref(d, suffix, sd, cfg, rows, cols, batch, seed, u8):
    p, C = cfg["patch_size"], cfg["num_channels"]
    rng = np.random.default_rng(seed)
    H, W = rows * p, cols * p
    mean = [0.48 + 0.01 * c for c in range(C)]
    std = [0.26 + 0.005 * c for c in range(C)]
    if u8:
        img8 = rng.integers(0, 256, (batch, C, H, W), dtype=np.uint8)
        x = (img8.astype(np.float64) / 255 - np.array(mean)[None, :, None, None]) / \
            np.array(std)[None, :, None, None]
        patches = images_to_patches(img8, p)
    else:
        x = rng.standard_normal((batch, C, H, W)).astype(np.float32)
        patches = images_to_patches(x, p)
        x = x.astype(np.float64)
    meta = {"aim.patch": str(p), "aim.grid": json.dumps([rows, cols]), "aim.channels": str(C),
            "aim.mean": json.dumps(mean), "aim.std": json.dumps(std), "aim.classes": json.dumps(["a", "b"])}
    recs, i = [], 0
    for s in (2, 1, 3, 2):
        s = min(s, batch - i)
        if s <= 0:
            break
        t = {"patches": np.ascontiguousarray(patches[i:i + s]),
             "label": np.arange(i, i + s, dtype=np.int64) % 2, "id": np.arange(i, i + s, dtype=np.int64)}
        recs.append((t, dict(meta, **{"aim.names": json.dumps(["im%d.png" % k for k in range(i, i + s)])})))
        i += s
    write_stream(os.path.join(d, "patches%s.aimt" % suffix), recs)
    if "preprocessor.pos_embed" in sd and sd["preprocessor.pos_embed"].shape[1] != rows * cols:
        return  # patches for a grid the learned table does not cover (an error test)
    outs, normed = trunk(sd, cfg, torch.from_numpy(x))
    with open(os.path.join(d, "ref%s.safetensors" % suffix), "wb") as f:
        f.write(st_bytes({"blocks": torch.stack(outs, 1).float().numpy(), "normed": normed.float().numpy()}))


def cmd_gen(a):
    need_torch()
    if a.learned and a.rows != a.cols:
        raise SystemExit("a learned table is square here (image_size is one number)")
    cfg = {"hidden_size": a.dim, "intermediate_size": a.mlp_hidden, "num_hidden_layers": a.depth,
           "num_attention_heads": a.heads, "num_channels": a.channels, "image_size": a.rows * a.patch,
           "patch_size": a.patch, "rms_norm_eps": 1e-5}
    sd = random_model(cfg, a.learned, a.qkv_bias, a.bias, a.seed)
    os.makedirs(a.dir, exist_ok=True)
    write_layouts(a.dir, sd, cfg, a.learned, a.qkv_bias, a.bias, a.format)
    patches_and_ref(a.dir, "", sd, cfg, a.rows, a.cols, a.batch, a.seed + 1, a.u8)
    if a.grid2:
        patches_and_ref(a.dir, "2", sd, cfg, a.grid2[0], a.grid2[1], a.batch, a.seed + 2, a.u8)


def cmd_check(a):
    ref, _ = read_st(a.ref)
    want = ref[a.key]
    got, _ = features_of(a.features)
    if got.shape != want.shape:
        print("%s: shape %s, reference %s" % (a.features, got.shape, want.shape))
        return 1
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max()) / scale
    print("%s: max error %.3g of scale %.3g" % (a.features, err, scale))
    return 0 if err <= a.tol else 1


def cmd_train_fixture(a):
    """Non-square 3x5 grid, a learned table, qkv and linear biases; the
    per-block outputs under the causal and prefix masks and every
    parameter's gradient of L = sum(g * post_norm(last block)) under the
    prefix mask (autograd, float64)."""
    need_torch()
    rows, cols, p, C = 3, 5, 4, 2
    cfg = {"hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 2,
           "num_attention_heads": 2, "num_channels": C, "image_size": 0, "patch_size": p,
           "rms_norm_eps": 1e-5}
    g = torch.Generator().manual_seed(21)
    sd = random_model(dict(cfg, image_size=p), True, True, True, 21)
    sd["preprocessor.pos_embed"] = (torch.randn(1, rows * cols, 24, generator=g) * 0.5).float()
    rng = np.random.default_rng(22)
    B = 3
    x = rng.standard_normal((B, C, rows * p, cols * p)).astype(np.float32)
    prefix = [2, 7, 15]
    out = {k: v.numpy() for k, v in sd.items()}
    out["ref.patches"] = images_to_patches(x, p).astype(np.float32)
    out["ref.prefix"] = np.array(prefix, np.int64)
    for kind in ("causal", "prefix"):
        outs, _ = trunk(sd, cfg, torch.from_numpy(x.astype(np.float64)), kind, prefix)
        out["ref.%s.blocks" % kind] = torch.stack(outs, 1).float().numpy()
    params = {k: v.double().clone().requires_grad_(True) for k, v in sd.items()}
    outs, normed = trunk(params, cfg, torch.from_numpy(x.astype(np.float64)), "prefix", prefix)
    gy = torch.from_numpy(rng.standard_normal(normed.shape))
    (normed * gy).sum().backward()
    out["ref.g"] = gy.float().numpy()
    for k, v in params.items():
        out["ref.grad." + k] = v.grad.float().numpy()
    meta = {"img_size": [rows * p, cols * p], "patch_size": p, "embed_dim": 24, "num_blocks": 2,
            "num_heads": 2, "num_channels": C, "mlp_hidden_dim": 40, "use_bias": True,
            "qkv_bias": True, "norm": "rmsnorm", "mlp": "swiglu", "pos_embed": "learned",
            "probe_layers": 2, "num_classes": 0}
    with open(a.out, "wb") as f:
        f.write(st_bytes(out, {"aim.config": json.dumps(meta)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    for k, v in [("dim", 32), ("depth", 2), ("heads", 2), ("patch", 4), ("channels", 3),
                 ("rows", 4), ("cols", 4), ("batch", 5), ("seed", 1), ("mlp_hidden", 88),
                 ("learned", 1), ("qkv_bias", 0), ("bias", 0), ("u8", 1)]:
        g.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    g.add_argument("--grid2", type=int, nargs=2)
    g.add_argument("--format", default="safetensors", choices=["safetensors", "bin"])
    c = sub.add_parser("check")
    c.add_argument("ref")
    c.add_argument("key")
    c.add_argument("features")
    c.add_argument("--tol", type=float, default=1e-4)
    t = sub.add_parser("train-fixture")
    t.add_argument("out")
    a = ap.parse_args()
    return {"gen": cmd_gen, "check": cmd_check, "train-fixture": cmd_train_fixture}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
