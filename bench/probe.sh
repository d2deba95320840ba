#!/bin/sh
# Probe heads against PyTorch (the AttentionPoolingClassifier semantics of
# tests/ref/probe_ref.py, fp32), same thread count, side by side, on
# AIM-600M-shaped features (dim 1536, 256 patches, 12 heads, 1000 classes):
#   (a) evaluation: aim-eval --head on a features file (whole tool: reading,
#       decompression, head, metrics) vs the PyTorch head's forward alone on
#       the same features already in memory;
#   (b) training: aim-probe, one epoch (whole tool) vs PyTorch forward +
#       backward + AdamW steps on the same batches in memory.
# Each side runs twice and keeps its better run (the machine is shared).
# aim computes attention pooling the cheap way (keys folded into the
# queries, values after pooling); PyTorch projects every token.
#   env: THREADS (2), N (samples, 128), PYTHON, BUILD
set -eu
THREADS=${THREADS:-2}
N=${N:-128}
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$BUILD/bin" && pwd)
"$PYTHON" -c "import torch, zstandard" 2>/dev/null || { echo "probe: torch not installed, skipped"; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$PYTHON" - "$T" "$N" "$THREADS" "$TOP/tests/ref" <<'PY' >"$T/ref.txt"
import json, sys, time
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, sys.argv[4])
from probe_ref import AttentiveHead, head_tensors, st_write, stream_write
work, N, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
D, K, H, C, B = 1536, 256, 12, 1000, 64
rng = np.random.default_rng(0)
x = rng.normal(0, 1, (N, K, D)).astype(np.float16)
y = rng.integers(0, C, N).astype(np.int64)
stream_write(f"{work}/feat.aimt", [({"features": x[i:i + 32], "label": y[i:i + 32]}, {}) for i in range(0, N, 32)])
m = AttentiveHead(D, C, H, 1, False)
t = head_tensors(m)
st_write(f"{work}/head.safetensors", t, {"aim.head": json.dumps({"probe": "attentive", "dim": D, "classes": C, "heads": H, "queries": 1})})
xt, yt = torch.tensor(x.astype(np.float32)), torch.tensor(y)
m.eval()
best = 1e9
for _ in range(2):
    t0 = time.time()
    with torch.no_grad():
        for i in range(0, N, B):
            m(xt[i:i + B])
    best = min(best, time.time() - t0)
print("eval", N / best)
m.train()
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.05)
best = 1e9
for _ in range(2):
    t0 = time.time()
    for i in range(0, N, B):
        loss = F.cross_entropy(m(xt[i:i + B]), yt[i:i + B], label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    best = min(best, time.time() - t0)
print("train", N / best)
PY
rate() { # command...: samples/s of the better of two runs
	b=0
	for _ in 1 2; do
		s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
		b=$(awk -v n="$N" -v s="$s" -v e="$e" -v b="$b" 'BEGIN { r = n / (e - s); print (r > b ? r : b) }')
	done
	echo "$b"
}
aim_eval=$(rate "$BIN/aim-eval" -q --threads "$THREADS" --head "$T/head.safetensors" "$T/feat.aimt")
aim_train=$(rate "$BIN/aim-probe" -q --threads "$THREADS" --heads 12 --epochs 1 --batch 64 --warmup 0 -o "$T/h.safetensors" "$T/feat.aimt")
ref_eval=$(awk '$1 == "eval" { print $2 }' "$T/ref.txt")
ref_train=$(awk '$1 == "train" { print $2 }' "$T/ref.txt")
awk -v a="$aim_eval" -v r="$ref_eval" -v t="$THREADS" 'BEGIN { printf "probe (a) eval, dim 1536, 256 patches, %d threads: aim-eval %.1f samples/s, PyTorch head %.1f samples/s, ratio %.2fx\n", t, a, r, a / r }'
awk -v a="$aim_train" -v r="$ref_train" -v t="$THREADS" 'BEGIN { printf "probe (b) train, batch 64, %d threads: aim-probe %.1f samples/s, PyTorch %.1f samples/s, ratio %.2fx\n", t, a, r, a / r }'
