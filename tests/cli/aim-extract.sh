#!/bin/sh
# aim-extract's command line: usage, exit codes, messages, closed pipes.
set -u
X=$BIN/aim-extract
D=$AIM_TOP/tests/data/model/tiny
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail=0
check() { # name, expected exit, expected stderr substring ("" = empty stderr), command...
	name=$1 want_rc=$2 want_err=$3; shift 3
	"$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	if [ $rc -ne "$want_rc" ]; then
		echo "FAIL $name: exit $rc, expected $want_rc; stderr: $(cat "$T/err")"; fail=1
	elif [ -n "$want_err" ] && ! grep -qF -- "$want_err" "$T/err"; then
		echo "FAIL $name: stderr lacks '$want_err': $(cat "$T/err")"; fail=1
	elif [ -z "$want_err" ] && [ -s "$T/err" ]; then
		echo "FAIL $name: unexpected stderr: $(cat "$T/err")"; fail=1
	else
		echo "ok $name"
	fi
}
check "--help" 0 "" $X --help
grep -q "^Usage: aim-extract -m MODEL" "$T/out" || { echo "FAIL --help text"; fail=1; }
check "--version" 0 "" $X --version
check "unknown option" 2 "frobnicate" $X --frobnicate
check "no model" 2 "-m MODEL" $X
check "bad --pool" 2 "--pool" $X -m "$D/model.safetensors" --pool max
check "bad --dtype" 2 "--dtype" $X -m "$D/model.safetensors" --dtype f64
check "bad --layers" 2 "--layers" $X -m "$D/model.safetensors" --layers 0,7 "$D/patches.aimt"
check "open range" 2 "--layers" $X -m "$D/model.safetensors" --layers 3- "$D/patches.aimt"
check "attn with stack" 2 "--stack" $X -m "$D/model.safetensors" --pool attn --stack
check "best on a toy" 1 "published shapes" $X -m "$D/model.safetensors" --layers best "$D/patches.aimt" -o "$T/x.aimt"
check "missing model" 1 "nonexistent" $X -m "$T/nonexistent.safetensors" "$D/patches.aimt"
check "missing input" 1 "nope.aimt" $X -q -m "$D/model.safetensors" "$T/nope.aimt" -o "$T/y.aimt"
[ -e "$T/y.aimt" ] && { echo "FAIL partial output left behind"; fail=1; }
check "terminal refusal or output" 0 "" $X -q -m "$D/model.safetensors" "$D/patches.aimt" -o "$T/z.aimt"
# A stream whose patches the model cannot take: tell how to re-run aim-patchify.
mkdir -p "$T/p8"
sed 's/"patch_size": 4/"patch_size": 8/; s/"img_size": \[12, 20\]/"img_size": [24, 40]/' "$D/config.json" >"$T/p8/config.json"
"$PYTHON" - "$D/model.safetensors" "$T/p8/model.safetensors" <<'PY' || fail=1
import sys, json
sys.path.insert(0, __import__("os").environ["AIM_TOP"] + "/tests/ref")
import numpy as np, aim_ref
t, m = aim_ref.read_st(sys.argv[1])
t["preprocessor.patchifier.proj.weight"] = np.zeros((32, 3, 8, 8), np.float32)
c = json.loads(m["aim.config"]); c["patch_size"] = 8; c["img_size"] = [24, 40]
m["aim.config"] = json.dumps(c)
open(sys.argv[2], "wb").write(aim_ref.st_bytes(t, m))
PY
check "patch size mismatch" 1 "re-run aim-patchify with --patch 8" $X -q -m "$T/p8/model.safetensors" "$D/patches.aimt" -o "$T/w.aimt"
# A closed pipe downstream ends the tool quietly.
cat "$D/patches.aimt" "$D/patches.aimt" "$D/patches.aimt" >"$T/many.aimt"
( $X -q --batch 1 -m "$D/model.safetensors" "$T/many.aimt" 2>"$T/pipe.err"; echo $? >"$T/pipe.rc" ) | head -c 10 >/dev/null
[ "$(cat "$T/pipe.rc")" = 0 ] && [ ! -s "$T/pipe.err" ] && echo "ok closed pipe" ||
	{ echo "FAIL closed pipe: exit $(cat "$T/pipe.rc"): $(cat "$T/pipe.err")"; fail=1; }
exit $fail
