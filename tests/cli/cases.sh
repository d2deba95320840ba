#!/bin/sh
# Command-line behaviour as files: every tests/cli/cases/*.t holds
#   cmd: a shell command (PATH has the built tools; $DATA = tests/data, $T = a scratch dir)
#   exit: the expected exit status
#   stderr: a fixed string stderr must contain (repeatable)
#   stdout: a fixed string stdout must contain (repeatable)
#   stdout-not: a fixed string stdout must not contain (repeatable)
#   stderr-lines: the exact number of lines on stderr
# Lines starting with # are comments.
set -u
export PATH="$BIN:$PATH" DATA="$AIM_TOP/tests/data"
fails=0 n=0
for case in "$AIM_TOP"/tests/cli/cases/*.t; do
	n=$((n + 1))
	T=$(mktemp -d); export T
	cmd=$(sed -n 's/^cmd: //p' "$case")
	want_exit=$(sed -n 's/^exit: //p' "$case")
	(cd "$T" && sh -c "$cmd" >"$T/.out" 2>"$T/.err" </dev/null)
	rc=$?
	bad=""
	[ "$rc" = "$want_exit" ] || bad="exit $rc, expected $want_exit"
	while IFS= read -r line; do
		case "$line" in
		"stderr: "*) grep -qF -- "${line#stderr: }" "$T/.err" || bad="$bad; stderr lacks '${line#stderr: }'" ;;
		"stdout: "*) grep -qF -- "${line#stdout: }" "$T/.out" || bad="$bad; stdout lacks '${line#stdout: }'" ;;
		"stdout-not: "*) ! grep -qF -- "${line#stdout-not: }" "$T/.out" || bad="$bad; stdout has '${line#stdout-not: }'" ;;
		"stderr-lines: "*) [ "$(wc -l <"$T/.err")" -eq "${line#stderr-lines: }" ] || bad="$bad; stderr has $(wc -l <"$T/.err") lines" ;;
		esac
	done <"$case"
	if [ -n "$bad" ]; then
		fails=$((fails + 1))
		echo "FAIL $(basename "$case"): $bad"; echo "  cmd: $cmd"; sed 's/^/  stderr: /' "$T/.err" | head -5
	else
		echo "ok   $(basename "$case")"
	fi
	rm -rf "$T"
done
echo "cli cases: $n run, $fails failed"
[ $fails -eq 0 ]
