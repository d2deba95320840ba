#!/bin/sh
# aim-patchify options: --help on stdout with exit 0, bad options exit 2
# with a message naming the option, no images exit 1.
set -u
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$BIN/aim-patchify" --help >"$T/out" 2>"$T/err" || fail "--help exit $?"
grep -q "^Usage: aim-patchify" "$T/out" || fail "--help text"
[ ! -s "$T/err" ] || fail "--help wrote to stderr"
expect2() {
	"$BIN/aim-patchify" "$@" -o "$T/x.aimt" "$T" >/dev/null 2>"$T/err"
	rc=$?
	[ $rc -eq 2 ] || fail "$* : exit $rc, want 2"
	[ -s "$T/err" ] || fail "$* : no message"
}
expect2 --bogus
expect2 --size 30 --patch 7
expect2 --transform fancy
expect2 --channels 2
expect2 --mean 0.5,0.5
expect2 --channels 1 --std 0.2,0.2,0.2
expect2 --transform train --resize 256
expect2 --scale 0.5,0.2
expect2 --classes maybe
expect2 --jitter 0.4
expect2 --log-augment x.tsv
expect2 --shard 3/3
expect2 --batch 0
expect2 --translate 2
grep -q -- "--translate" "$T/err" || fail "--translate without train: message names it"
expect2 --transform train --translate -1
expect2 --transform train --translate two
expect2 --transform train --translate 2 --scale 0.8,1
grep -q -- "--scale.*--translate" "$T/err" || fail "--translate with --scale: message names both"
expect2 --transform train --ratio 1,1 --translate 2
grep -q -- "--ratio.*--translate" "$T/err" || fail "--translate with --ratio: message names both"
expect2 --preset aimv3-224
grep -q "preset.*aimv3-224" "$T/err" || fail "--preset: message names the value"
expect2 --preset aimv2-224 --channels 1
expect2 --preset aimv2-336 --patch 15
mkdir "$T/empty"
"$BIN/aim-patchify" -o "$T/x.aimt" "$T/empty" 2>"$T/err"
[ $? -eq 1 ] || fail "no images: want exit 1"
grep -q "no images found" "$T/err" || fail "no images: message"
[ ! -e "$T/x.aimt" ] || fail "no images: output left behind"
echo ok
