#!/bin/sh
# The README's test command: install dependencies, build, run every test,
# then the whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer,
# and the fuzz targets briefly.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
JOBS=$(nproc)
make -j"$JOBS"
make -j"$JOBS" check
echo "== again under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=0 make -j"$JOBS" check SAN=1
echo "== fuzz targets, briefly"
make -j"$JOBS" fuzz FUZZ_SECONDS=${FUZZ_SECONDS:-10}
