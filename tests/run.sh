#!/bin/sh
# Runs every test of aim and prints one closing line "N passed, N failed".
#   build/tests/*           C unit tests (exit 0 = pass)
#   tests/cli/*.sh          command-line behaviour (exit code, stderr)
#   tests/ref/test_*.sh     parity against PyTorch, Pillow/torchvision, FAISS
# A test exits 77 to be skipped (its reference is not installed).
# TESTS="pattern" runs only the tests whose path contains pattern.
set -u
BUILD=${BUILD:-build}
export BUILD
BIN=$(cd "$BUILD/bin" && pwd)
export BIN
export AIM_TOP=$(pwd)
export PYTHON=${PYTHON:-/usr/bin/python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export TMPDIR=${TMPDIR:-/tmp}
pass=0 fail=0 skip=0 failed=""
run_one() {
	t=$1; shift
	case "$t" in *"${TESTS:-}"*) ;; *) return ;; esac
	log=$(mktemp)
	start=$(date +%s)
	"$@" >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1)); echo "PASS $t (${secs}s)"
	elif [ $rc -eq 77 ]; then
		skip=$((skip + 1)); echo "SKIP $t: $(tail -n 1 "$log")"
	else
		fail=$((fail + 1)); failed="$failed $t"
		echo "FAIL $t (exit $rc, ${secs}s)"; sed 's/^/    /' "$log" | tail -n 40
	fi
	rm -f "$log"
}
for t in "$BUILD"/tests/*; do [ -x "$t" ] && run_one "$t" "$t"; done
for t in tests/cli/*.sh; do [ -f "$t" ] && run_one "$t" sh "$t"; done
for t in tests/ref/test_*.sh; do [ -f "$t" ] && run_one "$t" sh "$t"; done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
