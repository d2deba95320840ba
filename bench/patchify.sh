#!/bin/sh
# aim-patchify --transform val against Pillow + torchvision on the same
# files: 200 generated 400x450 JPEGs, decode + bicubic resize 256 + centre
# crop 224 (+ ToTensor/Normalize for the reference, patches + stream for
# aim-patchify). Prints images/s of each on one thread, their ratio, and
# aim-patchify's 1 -> 2 thread scaling. Per-thread rates are images per
# CPU second (user + system time of the whole process: for aim-patchify
# that includes its writer thread and zstd), so other work on a shared
# machine does not skew the ratio; the scaling is wall-clock time.
set -eu
PY=${PYTHON:-/usr/bin/python3}
BIN=${BIN:-$(pwd)/build/bin}
N=${BENCH_IMAGES:-200}
$PY -c 'import torchvision, PIL' 2>/dev/null || { echo "patchify: skipped (torchvision/Pillow not installed)"; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PY - "$T" "$N" <<'PYEOF'
import sys, numpy as np
from PIL import Image, ImageFilter
rng = np.random.default_rng(0)
for i in range(int(sys.argv[2])):
    # photo-like: smooth colour fields, edges and some grain
    y, x = np.mgrid[0:450, 0:400]
    a = np.stack([128 + 100 * np.sin(x / (17 + i % 13) + c + y / (29 + i % 7)) for c in range(3)], -1)
    a += rng.normal(0, 12, a.shape)
    im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.SMOOTH)
    im.save(f"{sys.argv[1]}/img{i:04d}.jpg", quality=90)
PYEOF
ref=$($PY - "$T" <<'PYEOF'
import glob, sys, time, torch
torch.set_num_threads(1)
from PIL import Image
import torchvision.transforms as T
from torchvision.transforms import InterpolationMode
files = sorted(glob.glob(sys.argv[1] + "/*.jpg"))
t = T.Compose([T.Resize(256, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
               T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
best = 0
for rep in range(2):
    t0 = time.process_time()
    for f in files:
        with Image.open(f) as im:
            t(im.convert("RGB"))
    best = max(best, len(files) / (time.process_time() - t0))
print(f"{best:.1f}")
PYEOF
)
# rate THREADS cpu|wall: images/s of aim-patchify, best of 2 runs
rate() {
	best=0
	for rep in 1 2; do
		/usr/bin/time -f "%e %U %S" -o "$T/time" "$BIN/aim-patchify" -q --threads "$1" "$T" >/dev/null
		best=$(awk -v n="$N" -v b="$best" -v m="$2" '{s = m == "cpu" ? $2 + $3 : $1; r = n / s; print (r > b ? r : b)}' "$T/time")
	done
	printf '%.1f' "$best"
}
one=$(rate 1 cpu)
wall1=$(rate 1 wall)
wall2=$(rate 2 wall)
echo "patchify: $N 400x450 JPEGs, val 256/224; $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg) at the end"
echo "patchify: Pillow+torchvision  $ref images per CPU second (1 thread)"
echo "patchify: aim-patchify        $one images per CPU second (--threads 1)"
echo "patchify: aim-patchify        wall: $wall1 images/s with 1 thread, $wall2 with 2"
echo "$one $ref $wall1 $wall2" | awk '{printf "patchify: ratio aim/reference per thread %.2fx; scaling 1->2 threads %.2fx\n", $1 / $2, $4 / $3}'
