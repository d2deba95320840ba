#!/bin/sh
# aim-eval --pixel-loss --chunks N: the loss of each of N equal parts of the
# sequence in prediction order. With causal attention every image predicts
# the same steps 1..K-1, so the chunks' losses weighted by how many steps
# each holds average to the whole loss; aim-train --val logs the same
# chunks (chunks.csv, chunks.png) for the same checkpoint; a resumed run
# keeps the rows up to its step.
set -eu
$PYTHON -c 'import numpy' 2>/dev/null || { echo "no numpy for $PYTHON"; exit 77; }
REF="$AIM_TOP/tests/ref/train_ref.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PYTHON "$REF" make-stream "$T/s.aimt" --n 40 --grid 3 4 --patch 2 --channels 1 --seed 4
$PYTHON "$REF" make-stream "$T/v.aimt" --n 9 --grid 3 4 --patch 2 --channels 1 --seed 5
C="--dim 16 --depth 2 --heads 2 --head-blocks 1 --batch 4 --lr 3e-3 --val $T/v.aimt --val-every 2 --threads 1 -q"
"$BIN/aim-train" $C --attention causal --order spiral --steps 6 --chunks 4 -o "$T/r" "$T/s.aimt"
[ -s "$T/r/chunks.png" ] || { echo "no chunks.png"; exit 1; }
"$BIN/aim-eval" -q --json --batch 5 -m "$T/r" --pixel-loss --chunks 4 "$T/v.aimt" >"$T/e.json"
"$BIN/aim-eval" -q -m "$T/r" --pixel-loss --chunks 4 "$T/v.aimt" | grep -q "^chunk 4/4  "
$PYTHON - "$T/e.json" "$T/r/chunks.csv" "$T/r/log.csv" <<'PY'
import csv, json, sys
e = json.load(open(sys.argv[1]))
rows = list(csv.reader(open(sys.argv[2])))
assert rows[0] == ["step", "chunk_1", "chunk_2", "chunk_3", "chunk_4"], rows[0]
assert [r[0] for r in rows[1:]] == ["2", "4", "6"], rows
last = [float(v) for v in rows[-1][1:]]
for a, b in zip(last, e["chunks"]):
    assert abs(a - b) <= 1e-6 * abs(b), (last, e["chunks"])
# K = 12, steps 1..11 in 4 parts: floor(s*4/12) -> 2, 3, 3, 3 steps
w = [2, 3, 3, 3]
mean = sum(c * n for c, n in zip(e["chunks"], w)) / sum(w)
assert abs(mean - e["pixel_loss"]) <= 1e-5 * e["pixel_loss"], (mean, e)
val = [r for r in csv.DictReader(open(sys.argv[3])) if r["val_loss"]][-1]
assert abs(float(val["val_loss"]) - e["pixel_loss"]) <= 1e-6 * e["pixel_loss"]
print("chunks", e["chunks"], "weighted mean", mean, "loss", e["pixel_loss"])
PY
# resumed: the rows after the checkpoint are dropped, then logged again
"$BIN/aim-train" $C --attention causal --order spiral --steps 4 --chunks 4 -o "$T/q" "$T/s.aimt"
echo "99,1,1,1,1" >>"$T/q/chunks.csv"
"$BIN/aim-train" $C --steps 6 --chunks 4 --resume "$T/q" "$T/s.aimt"
[ "$(cut -d, -f1 "$T/q/chunks.csv" | tr '\n' ' ')" = "step 2 4 6 " ] || { cat "$T/q/chunks.csv"; exit 1; }
set +e
"$BIN/aim-eval" -m "$T/r" --chunks 4 "$T/v.aimt" 2>"$T/err"
[ $? -eq 2 ] && grep -q -- "--chunks needs --pixel-loss" "$T/err" || { cat "$T/err"; exit 1; }
"$BIN/aim-eval" -m "$T/r" --pixel-loss --chunks 0 "$T/v.aimt" 2>"$T/err"
[ $? -eq 2 ] || { cat "$T/err"; exit 1; }
exit 0
