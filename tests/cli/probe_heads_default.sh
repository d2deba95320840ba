#!/bin/sh
# Features another tool wrote carry no aim.config: aim-probe picks the
# documented default head count (aim-probe(1), --heads) for any width and
# says so with -v; the head records it; --heads still overrides.
set -eu
"$PYTHON" -c 'import numpy, zstandard' 2>/dev/null || { echo "numpy/zstandard not installed"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
heads_of() { "$BIN/aim-tensor" info --json "$1" | grep -o '\\"heads\\": *[0-9]*' | grep -o '[0-9]*$'; }
for case in "200 2 100" "768 6 128" "1000 10 100" "96 1 96"; do
	set -- $case
	"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" learnable "$work" f32 "$1"
	"$BIN/aim-probe" -v --threads 2 --epochs 1 --batch 500 -o "$work/h.safetensors" \
		"$work/train.aimt" 2>"$work/err" || fail "D $1: $(cat "$work/err")"
	grep -q "no aim.config: $2 attention heads of width $3" "$work/err" ||
		fail "D $1: -v does not say $2 heads: $(cat "$work/err")"
	[ "$(heads_of "$work/h.safetensors")" = "$2" ] || fail "D $1: head has $(heads_of "$work/h.safetensors") heads"
done
"$BIN/aim-probe" -q --threads 2 --heads 4 --epochs 1 --batch 500 -o "$work/h4.safetensors" "$work/train.aimt"
[ "$(heads_of "$work/h4.safetensors")" = "4" ] || fail "--heads 4 gave $(heads_of "$work/h4.safetensors")"
"$BIN/aim-probe" -q --threads 2 --heads 5 --epochs 1 -o "$work/h5.safetensors" "$work/train.aimt" 2>"$work/err" &&
	fail "--heads 5 with D 96 was accepted"
grep -q "aim-probe: .*5 heads do not divide" "$work/err" || fail "--heads 5: $(cat "$work/err")"
exit 0
