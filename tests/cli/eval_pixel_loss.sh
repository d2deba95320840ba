#!/bin/sh
# aim-eval -m CHECKPOINT --pixel-loss reports the validation loss aim-train
# logged for the same checkpoint and stream (log.csv, val_loss), whatever
# the forward batch.
set -eu
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
P=$AIM_TOP/tests/data/model/tiny/patches.aimt
cat "$P" "$P" "$P" >"$work/train.aimt"
"$BIN/aim-train" -q --threads 2 --dim 16 --depth 2 --heads 2 --head-blocks 1 --steps 3 \
	--batch 4 --save-every 3 --val-every 3 --val "$P" -o "$work/run" "$work/train.aimt"
want=$(awk -F, 'NR > 1 && $6 != "" { v = $6 } END { print v }' "$work/run/log.csv")
[ -n "$want" ] || { echo "aim-train logged no val_loss"; cat "$work/run/log.csv"; exit 1; }
for b in 16 2; do
	got=$("$BIN/aim-eval" -q --json --batch $b -m "$work/run" --pixel-loss "$P")
	echo "batch $b: $got (aim-train: $want)"
	echo "$got" | awk -v want="$want" '{ match($0, /"pixel_loss":[^,}]*/); v = substr($0, RSTART + 13, RLENGTH - 13);
		d = v - want; if (d < 0) d = -d; exit !(d <= 1e-6 * (want < 0 ? -want : want) + 1e-7) }'
done
# a stream that does not fit the checkpoint is a clear error
if "$BIN/aim-eval" -q -m "$work/run" --pixel-loss "$AIM_TOP/tests/data/probe/feats.aimt" 2>"$work/err"; then
	echo "features accepted as patches"; exit 1
fi
cat "$work/err"
