#!/bin/sh
# aim-patchify --labels on a flat folder: labels by class name (the sorted
# names are the classes) and by index with --classes-file, matched by path
# or file name; each mistake in a labels or classes file is one line naming
# the file (and line) with exit 1; --classes-file alone is a usage error.
set -u
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; [ -f "$T/err" ] && sed 's/^/  stderr: /' "$T/err"; exit 1; }
mkdir "$T/val"
$PY - "$T/val" <<'PYEOF'
import struct, sys, zlib
d = sys.argv[1]
def chunk(k, b): return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
for i in range(4):
    raw = b"".join(b"\0" + bytes((x * 7 + y * 3 + i) % 256 for x in range(20)) for y in range(20))
    open(f"{d}/img{i}.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20, 20, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PYEOF
meta() { # "id:label ..." and the classes of an uncompressed stream
	$PY -c '
import json, struct, sys
d = open(sys.argv[1], "rb").read(); pos = 0; out = []; classes = None
while pos < len(d):
    (h,) = struct.unpack_from("<Q", d, pos); hdr = json.loads(d[pos + 8:pos + 8 + h])
    base = pos + 8 + h
    def t(k):
        s, e = hdr[k]["data_offsets"]; return struct.unpack("<%dq" % ((e - s) // 8), d[base + s:base + e])
    out += ["%d:%d" % p for p in zip(t("id"), t("label"))]
    classes = classes or hdr["__metadata__"].get("aim.classes")
    pos = base + max(v["data_offsets"][1] for k, v in hdr.items() if k != "__metadata__")
print(" ".join(out), classes)' "$1"
}
run() { "$BIN/aim-patchify" -q --size 14 --patch 7 --level 0 -o "$T/out.aimt" "$@" 2>"$T/err"; }

printf 'img0.png dog\n# a comment\n\n%s/val/img1.png cat\nimg2.png dog\nimg3.png bird\nother.png cat\n' "$T" >"$T/names.txt"
run --labels "$T/names.txt" "$T/val" || fail "--labels by name"
[ "$(meta "$T/out.aimt")" = '0:2 1:1 2:2 3:0 ["bird","cat","dog"]' ] || fail "labels by name: $(meta "$T/out.aimt")"
printf 'img0.png 2\nimg1.png 0\nimg2.png 1\nimg3.png 1\n' >"$T/idx.txt"
printf 'n02\nn01 first class\nn03\n' >"$T/classes.txt"
run --labels "$T/idx.txt" --classes-file "$T/classes.txt" "$T/val" || fail "--labels by index"
[ "$(meta "$T/out.aimt")" = '0:2 1:0 2:1 3:1 ["n02","n01","n03"]' ] || fail "labels by index: $(meta "$T/out.aimt")"
run --labels "$T/idx.txt" "$T/val" || fail "indices without classes"
[ "$(meta "$T/out.aimt")" = '0:2 1:0 2:1 3:1 []' ] || fail "indices without classes: $(meta "$T/out.aimt")"

expect() { # WANT-IN-STDERR ARGS...
	want=$1; shift
	run "$@"; rc=$?
	[ $rc -eq 1 ] || fail "$*: exit $rc, want 1"
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "$*: want one line"
	grep -q "^aim-patchify: $want" "$T/err" || fail "$*: want '$want'"
	[ ! -e "$T/out2.aimt" ] || fail "output left"
}
printf 'img0.png dog\nimg1.png cat\nimg2.png dog\n' >"$T/missing.txt"
expect "$T/missing.txt: no label for $T/val/img3.png" --labels "$T/missing.txt" "$T/val"
printf 'img0.png dog\nimg1.png cat\nimg2.png dog\nimg3.png dog\nimg0.png cat\n' >"$T/twice.txt"
expect "$T/twice.txt:5: 'img0.png' is labelled twice (line 1 too)" --labels "$T/twice.txt" "$T/val"
printf 'img0.png n01\nimg1.png n09\n' >"$T/unknown.txt"
expect "$T/unknown.txt:2: unknown class 'n09' (not in $T/classes.txt)" --labels "$T/unknown.txt" --classes-file "$T/classes.txt" "$T/val"
printf 'img0.png 3\n' >"$T/past.txt"
expect "$T/past.txt:1: class index 3 is past the 3 classes" --labels "$T/past.txt" --classes-file "$T/classes.txt" "$T/val"
printf 'img0.png dog extra\n' >"$T/three.txt"
expect "$T/three.txt:1: expected NAME LABEL" --labels "$T/three.txt" "$T/val"
expect "$T/nofile.txt: cannot open the labels file" --labels "$T/nofile.txt" "$T/val"
printf 'a\nb\na\n' >"$T/dup.txt"
expect "$T/dup.txt: class 'a' is given twice" --labels "$T/idx.txt" --classes-file "$T/dup.txt" "$T/val"
: >"$T/empty.txt"
expect "$T/empty.txt: no labels" --labels "$T/empty.txt" "$T/val"

"$BIN/aim-patchify" --classes-file "$T/classes.txt" "$T/val" >/dev/null 2>"$T/err"
[ $? -eq 2 ] || fail "--classes-file without --labels: want exit 2"
grep -q "classes-file needs --labels" "$T/err" || fail "--classes-file usage message"
echo "ok"
