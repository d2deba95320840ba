#!/bin/sh
# `make bench`: every benchmark measures aim against its reference in the
# same run and prints the ratio. BENCH="pattern" runs only matching ones.
# Results are also appended to bench/results.txt (not tracked).
set -u
BUILD=${BUILD:-build}
export BIN=$(cd "$BUILD/bin" && pwd) AIM_TOP=$(pwd) PYTHON=${PYTHON:-/usr/bin/python3}
status=0
for b in bench/*.sh; do
	[ "$b" = bench/run.sh ] && continue
	case "$b" in *"${BENCH:-}"*) ;; *) continue ;; esac
	echo "== $b ($(date -u +%H:%M:%S))"
	sh "$b" 2>&1 | tee -a bench/results.txt || status=1
done
exit $status
