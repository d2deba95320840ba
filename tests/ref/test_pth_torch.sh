#!/bin/sh
# aim_pth_load against checkpoints torch writes now: every loaded dtype,
# views with offsets and strides, shared storages, checkpoint wrappers,
# protocol 4, deflated archives, and the refusals (foreign globals, legacy
# format, wrong storage sizes, truncation, garbage). The expected tensors
# are torch's own bytes (tests/ref/make_pth_fixtures.py).
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-build}
top=${AIM_TOP:-.}
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "torch not installed for $PYTHON"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/aim-pth.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
"$PYTHON" "$top/tests/ref/make_pth_fixtures.py" "$dir" || exit 1
"$top/$BUILD/tests/test_pth" "$dir"
