#!/usr/bin/python3
"""The PyTorch side of the GPU benchmarks of tests/gpu/run.sh: the same AIM
trunk (pre-norm ViT blocks, no qkv bias, patch embedding + LayerNorm, 2-D
sin-cos positions, post-trunk LayerNorm) and, for training, the pixel head
(projection, MLP blocks without bias, norm, prediction), the next-patch
normalised-pixel loss with prefix-causal attention, gradient clipping and
AdamW — in bf16 autocast with F.scaled_dot_product_attention, the usual
fast PyTorch recipe. Random weights and inputs; only the time matters.

  torch_bench.py extract --dim D --depth N --heads H --batch B [--iters I]
  torch_bench.py train --dim D --depth N --heads H --head-blocks N2
                       --head-dim W --batch B [--iters I]

Prints one line: "images/s X  step_s Y  tflops Z" where tflops counts the
model's matrix products as aim_model_flops does (2 per multiply-add,
attention included; training = 3 x forward). Needs a CUDA device."""
import argparse
import math
import sys
import time

import torch
import torch.nn.functional as F

IMG, PATCH, CH = 224, 14, 3


def sincos_2d(rows, cols, dim, device):
    def one(d, pos):
        omega = torch.arange(d // 2, dtype=torch.float64, device=device) / (d / 2.0)
        omega = 1.0 / 10000 ** omega
        out = pos.reshape(-1).double()[:, None] * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)
    gy, gx = torch.meshgrid(torch.arange(rows, device=device), torch.arange(cols, device=device),
                            indexing="ij")
    return torch.cat([one(dim // 2, gy), one(dim // 2, gx)], dim=1).float()


class Block(torch.nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm_1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.qkv = torch.nn.Linear(dim, 3 * dim, bias=False)
        self.proj = torch.nn.Linear(dim, dim)
        self.norm_2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = torch.nn.Linear(dim, 4 * dim)
        self.fc2 = torch.nn.Linear(4 * dim, dim)

    def forward(self, x, mask):
        B, K, D = x.shape
        q, k, v = self.qkv(self.norm_1(x)).reshape(B, K, 3, self.heads, D // self.heads) \
            .permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(a.transpose(1, 2).reshape(B, K, D))
        return x + self.fc2(F.gelu(self.fc1(self.norm_2(x))))


class Trunk(torch.nn.Module):
    def __init__(self, dim, depth, heads, device):
        super().__init__()
        P = CH * PATCH * PATCH
        self.patch = torch.nn.Linear(P, dim)
        self.patch_norm = torch.nn.LayerNorm(dim, eps=1e-6)
        g = IMG // PATCH
        self.register_buffer("pos", sincos_2d(g, g, dim, device))
        self.blocks = torch.nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = torch.nn.LayerNorm(dim, eps=1e-6)

    def forward(self, patches, mask=None):
        x = self.patch_norm(self.patch(patches)) + self.pos
        for b in self.blocks:
            x = b(x, mask)
        return self.norm(x)


class PixelHead(torch.nn.Module):
    def __init__(self, dim, width, blocks, device):
        super().__init__()
        g = IMG // PATCH
        self.proj = torch.nn.Linear(dim, width)
        self.register_buffer("pos", sincos_2d(g, g, width, device))
        self.blocks = torch.nn.ModuleList([torch.nn.ModuleDict({
            "norm": torch.nn.LayerNorm(width, eps=1e-6),
            "fc1": torch.nn.Linear(width, 4 * width, bias=False),
            "fc2": torch.nn.Linear(4 * width, width, bias=False)}) for _ in range(blocks)])
        self.norm = torch.nn.LayerNorm(width, eps=1e-6)
        self.pred = torch.nn.Linear(width, CH * PATCH * PATCH)

    def forward(self, x):
        x = self.proj(x) + self.pos
        for b in self.blocks:
            x = x + b["fc2"](F.gelu(b["fc1"](b["norm"](x))))
        return self.pred(self.norm(x))


def trunk_flops(dim, depth, K):
    """Per image, forward: 2 per multiply-add (patch embedding, qkv, proj,
    MLP, attention scores and values)."""
    P = CH * PATCH * PATCH
    per_block = 2 * K * (3 * dim * dim + dim * dim + 8 * dim * dim) + 4 * K * K * dim
    return 2 * K * P * dim + depth * per_block


def head_flops(dim, width, blocks, K):
    P = CH * PATCH * PATCH
    return 2 * K * (dim * width + blocks * 8 * width * width + width * P)


def timed(fn, iters):
    for _ in range(2):  # warm-up: kernels chosen, memory pools grown
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["extract", "train"])
    for k in ("dim", "depth", "heads", "batch"):
        ap.add_argument("--" + k, type=int, required=True)
    ap.add_argument("--head-blocks", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=0)
    ap.add_argument("--iters", type=int, default=10)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_bench: no CUDA device for PyTorch", file=sys.stderr)
        sys.exit(77)
    dev = torch.device("cuda")
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    g = IMG // PATCH
    K, P, B = g * g, CH * PATCH * PATCH, a.batch
    trunk = Trunk(a.dim, a.depth, a.heads, dev).to(dev)
    x = torch.randn(B, K, P, device=dev)
    if a.mode == "extract":
        trunk.eval()

        def step():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                trunk(x)
        dt = timed(step, a.iters)
        flops = trunk_flops(a.dim, a.depth, K) * B
    else:
        W = a.head_dim or a.dim
        head = PixelHead(a.dim, W, a.head_blocks, dev).to(dev)
        params = list(trunk.parameters()) + list(head.parameters())
        try:
            opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05,
                                    fused=True)
        except (TypeError, RuntimeError):
            opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
        # prefix-causal masks: image b attends fully within its prefix
        prefix = torch.randint(1, K, (B,), device=dev)
        i = torch.arange(K, device=dev)
        causal = i[None, :] <= i[:, None]
        mask = (causal[None] | (i[None, None, :] < prefix[:, None, None]))[:, None]
        predicts = i[None, :] >= prefix[:, None]          # rows outside the prefix
        predicts[:, -1] = False                           # the last patch predicts nothing
        mean = x.mean(-1, keepdim=True)
        std = x.var(-1, keepdim=True, unbiased=True).add(1e-6).sqrt()
        target = (x - mean) / std

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                pred = head(trunk(x, mask))
            err = (pred.float()[:, :-1] - target[:, 1:]).pow(2).mean(-1)
            loss = (err * predicts[:, :-1]).sum() / predicts.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        dt = timed(step, a.iters)
        flops = 3 * (trunk_flops(a.dim, a.depth, K) + head_flops(a.dim, W, a.head_blocks, K)) * B
    print("images/s %.2f  step_s %.5f  tflops %.2f" % (B / dt, dt, flops / dt / 1e12))


if __name__ == "__main__":
    main()
