#!/bin/sh
# Runs every fuzz target on a copy of its seed corpus (tests/fuzz/corpus/NAME,
# NAME = the target without "fuzz_"): for FUZZ_SECONDS each (default 60), or,
# with FUZZ_RUNS=N, for N executions each (make fuzz FUZZ_RUNS=10000000 is
# the release check: 10 million executions per target, no finding). Each
# line reports the executions done, the time and the rate.
set -eu
secs=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-}
only=${FUZZ_TARGETS:-}
status=0
for f in build-fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=${f#build-fuzz/fuzz_}
	case " ${only:-$name} " in *" $name "*) ;; *) continue ;; esac
	work=$(mktemp -d)
	[ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
	if [ -n "$runs" ]; then limit="-runs=$runs"; else limit="-max_total_time=$secs"; fi
	start=$(date +%s)
	if "$f" "$limit" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 "$work" >"$work.log" 2>&1; then
		took=$(( $(date +%s) - start ))
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log")
		echo "fuzz $name: ok, ${execs:-?} executions in ${took}s ($(sed -n 's/^stat::average_exec_per_sec: *//p' "$work.log") exec/s), no finding"
	else
		echo "fuzz $name: FAILED"; tail -n 40 "$work.log"; status=1
	fi
	rm -rf "$work" "$work.log"
done
exit $status
