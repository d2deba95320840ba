#!/bin/sh
# aim-retrieve against independent references: scenario "knn" of
# tests/ref/retrieve_ref.py (streams written by Python, FAISS / NumPy / PyTorch).
set -u
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-/usr/bin/python3}" "$AIM_TOP/tests/ref/retrieve_ref.py" knn "$BIN" "$tmp"
