#!/bin/sh
# Probe heads against the PyTorch reference (tests/ref/probe_ref.py): eval
# and training-mode outputs, BatchNorm running statistics, gradients of every
# parameter and of the input, two AdamW steps; attentive with one and three
# queries, linear with and without bias.
set -eu
"$PYTHON" -c 'import torch, numpy, zstandard' 2>/dev/null || { echo "torch not installed"; exit 77; }
DUMP=$AIM_TOP/$BUILD/tests/test_probe_head
[ -x "$DUMP" ] || { echo "missing $DUMP"; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for case in "attentive 1 0" "attentive 3 1" "linear 1 1" "linear 1 0"; do
	echo "== $case"
	"$PYTHON" "$AIM_TOP/tests/ref/probe_ref.py" head $case "$work" "$DUMP"
done
