#!/bin/sh
# End to end on one machine: N JPEGs of ImageNet validation size (made by
# make_jpegs.py) -> aim-patchify (val transform, all cores) -> aim-eval -m
# with an AIM-0.6B-shape trunk and a 1000-class attentive head, in one pipe,
# timed from the first byte decoded to the metrics printed. The GPU
# target: 50,000 images in at most 120 s on an H100 with 16 cores.
#
#   tests/gpu/e2e.sh        (tests/gpu/run.sh calls it on a GPU machine)
# Environment: E2E_N (50000), E2E_PRESET (aim-600M), E2E_DEVICE (cuda),
# E2E_PRECISION (bf16), E2E_BATCH (256), THREADS (all cores), BUILD, PY.
# The trunk and head are random (the timing does not depend on the
# weights): aim-train --steps 0 writes a trunk's initial weights, and
# aim-probe -m trains a head for one epoch on one image per class
# (1000 classes; fewer when E2E_N is below 1000).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
BIN=${BUILD:-build}/bin
PY=${PY:-/usr/bin/python3}
N=${E2E_N:-50000}
PRESET=${E2E_PRESET:-aim-600M}
DEV=${E2E_DEVICE:-cuda}
PREC=${E2E_PRECISION:-bf16}
BATCH=${E2E_BATCH:-256}
THREADS=${THREADS:-$(nproc)}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PY -c 'import numpy, PIL' 2>/dev/null || { echo "e2e: numpy and PIL needed at $PY"; exit 77; }

s=$(date +%s)
C=$(( N < 1000 ? N : 1000 ))
$PY tests/gpu/make_jpegs.py "$T/val" "$N" "$THREADS" "$C"
$PY tests/gpu/make_jpegs.py "$T/train" "$C" "$THREADS" "$C"
"$BIN/aim-patchify" --threads "$THREADS" -q -o "$T/train.aimt" "$T/train"
"$BIN/aim-train" --preset "$PRESET" --steps 0 -q -o "$T/trunk" "$T/train.aimt"
M=$(ls "$T"/trunk/step-*.safetensors)
"$BIN/aim-probe" -m "$M" --device "$DEV" --precision "$PREC" --epochs 1 --batch 64 -q \
	-o "$T/head.safetensors" "$T/train.aimt"
echo "e2e: $N JPEGs ($(du -sh "$T/val" | cut -f1)), a $PRESET trunk and head made in $(( $(date +%s) - s )) s"

s=$(date +%s.%N)
"$BIN/aim-patchify" --threads "$THREADS" -q "$T/val" |
	"$BIN/aim-eval" -m "$M" --head "$T/head.safetensors" --device "$DEV" --precision "$PREC" \
		--batch "$BATCH" --json >"$T/result.json"
e=$(date +%s.%N)
$PY - "$T/result.json" "$N" "$s" "$e" "$PRESET" "$DEV" "$PREC" "$THREADS" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
n, t = int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3])
assert r["n"] == n, "aim-eval saw %d of %d images" % (r["n"], n)
print("e2e: %d JPEGs -> aim-patchify (%s threads) -> aim-eval -m %s on %s (%s): %.1f s, %.0f images/s%s"
      % (n, sys.argv[8], sys.argv[5], sys.argv[6], sys.argv[7], t, n / t,
         "" if n != 50000 else ("  (target <= 120 s: %s)" % ("met" if t <= 120 else "MISSED"))))
PYEOF
