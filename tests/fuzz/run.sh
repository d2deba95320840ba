#!/bin/sh
# Runs every fuzz target for FUZZ_SECONDS on a copy of its seed corpus
# (tests/fuzz/corpus/NAME, NAME = the target without "fuzz_").
set -eu
secs=${FUZZ_SECONDS:-60}
status=0
for f in build-fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=${f#build-fuzz/fuzz_}
	work=$(mktemp -d)
	[ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
	if "$f" -max_total_time="$secs" -rss_limit_mb=4096 -timeout=20 -print_final_stats=0 "$work" >"$work.log" 2>&1; then
		echo "fuzz $name: ok ($(grep -c . "$work.log") log lines, ${secs}s)"
	else
		echo "fuzz $name: FAILED"; tail -n 40 "$work.log"; status=1
	fi
	rm -rf "$work" "$work.log"
done
exit $status
