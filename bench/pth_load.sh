#!/bin/sh
# Loading PyTorch checkpoints: aim_pth_load against torch.load (best of 3,
# side by side) on a state dict of 85,000 small tensors and on 2,000 views
# of one deflated 4 MB storage. BENCH_PTH_N sets the tensor count (a quick
# check: BENCH_PTH_N=2000).
set -eu
TOP=${AIM_TOP:-.}
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
N=${BENCH_PTH_N:-85000}
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "pth_load: torch not installed, skipped"; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cc -O2 $(make -s -C "$TOP" includes) -o "$T/pth_load" "$TOP/bench/pth_load.c" "$TOP/$BUILD/libaim.a" \
	$(pkg-config --libs libzip jansson libzstd) -lm -lpthread -fopenmp
"$PYTHON" - "$T" "$N" <<'PY'
import collections, sys, time, zipfile, torch
d, n = sys.argv[1], int(sys.argv[2])
many = collections.OrderedDict((f"blocks.{i // 8}.p{i % 8}", torch.full((2,), float(i))) for i in range(n))
torch.save(many, f"{d}/many.pth")
flat = torch.randn(1 << 20)
torch.save({f"v{i}": flat[i * 512:(i + 1) * 512] for i in range(2000)}, f"{d}/s.pth")
with zipfile.ZipFile(f"{d}/s.pth") as zi, zipfile.ZipFile(f"{d}/shared.pth", "w", zipfile.ZIP_DEFLATED) as zo:
    for i in zi.infolist():
        zo.writestr(i.filename, zi.read(i.filename))
with open(f"{d}/torch.txt", "w") as out:
    for name in ("many", "shared"):
        best = 1e30
        for _ in range(3):
            t = time.perf_counter(); sd = torch.load(f"{d}/{name}.pth", weights_only=True)
            best = min(best, time.perf_counter() - t)
        out.write(f"{name} {len(sd)} {best:.4f}\n")
PY
"$T/pth_load" "$T/many.pth" "$T/shared.pth" >"$T/aim.txt"
while read -r name n t; do
	a=$(grep "/$name.pth " "$T/aim.txt" | cut -d' ' -f3)
	echo "pth_load $name ($n tensors): aim ${a}s, torch ${t}s, aim/torch $(echo "$a $t" | awk '{printf "%.2f", $1 / $2}')"
done <"$T/torch.txt"
