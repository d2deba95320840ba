#!/bin/sh
# Model and head files are recognised by their content, never by their
# names (weights_file.h): copies under other names give the same results;
# a legacy torch.save file, a directory and a file with tensors of no known
# part are errors naming what they are.
set -u
D=$AIM_TOP/tests/data/model/tiny
P=$D/patches.aimt
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# the same tensors (the metadata names the model file, so it differs)
same_tensors() {
	rm -rf "$T/n1" "$T/n2"
	mkdir "$T/n1" "$T/n2" && "$BIN/aim-tensor" -q to-npy -o "$T/n1" "$1" &&
		"$BIN/aim-tensor" -q to-npy -o "$T/n2" "$2" &&
		for f in "$T"/n1/*.npy; do cmp -s "$f" "$T/n2/${f##*/}" || return 1; done
}
err_has() { grep -qF -- "$1" "$T/err" || fail "$2: stderr lacks '$1': $(cat "$T/err")"; }

# a safetensors model and a torch backbone + head under names that say nothing
cp "$D/model.safetensors" "$T/model.weights"
mkdir "$T/pth" && cp "$D/backbone.pth" "$T/pth/backbone.data" && cp "$D/head.pth" "$T/pth/head" &&
	cp "$D/config.json" "$T/pth/config.json"
"$BIN/aim-extract" -q -m "$D/model.safetensors" "$P" -o "$T/a.aimt" || fail "extract"
"$BIN/aim-extract" -q -m "$T/model.weights" "$P" -o "$T/b.aimt" || fail "extract model.weights"
same_tensors "$T/a.aimt" "$T/b.aimt" || fail "model.weights gave other features"
"$BIN/aim-extract" -q -m "$D/backbone.pth" --head "$D/head.pth" --pool attn "$P" -o "$T/c.aimt" 2>"$T/err" ||
	fail "extract .pth: $(cat "$T/err")"
"$BIN/aim-extract" -q -m "$T/pth/backbone.data" --head "$T/pth/head" --pool attn "$P" -o "$T/d.aimt" 2>"$T/err" ||
	fail "extract backbone.data: $(cat "$T/err")"
same_tensors "$T/c.aimt" "$T/d.aimt" || fail "backbone.data + head gave other features"

# aim-eval: a head not named .safetensors, with a model that has its own
# head, replaces that head as a .safetensors one does (it used to fail with
# "given twice")
"$BIN/aim-probe" -q --threads 2 -m "$D/model.safetensors" --epochs 1 -o "$T/h.safetensors" "$P" ||
	fail "aim-probe"
cp "$T/h.safetensors" "$T/h3"
"$BIN/aim-eval" -m "$D/model.safetensors" --head "$T/h.safetensors" "$P" >"$T/e1" 2>"$T/err" ||
	fail "aim-eval --head h.safetensors: $(cat "$T/err")"
"$BIN/aim-eval" -m "$D/model.safetensors" --head "$T/h3" "$P" >"$T/e2" 2>"$T/err" ||
	fail "aim-eval --head h3 (no extension): $(cat "$T/err")"
cmp -s "$T/e1" "$T/e2" || fail "aim-eval: the head's name changed the result"
# a legacy (pre-1.6) torch.save file: say what it is and how to convert it
L=$AIM_TOP/tests/data/pth/legacy.bin
for cmd in "aim-extract -m $L $P" "aim-eval --head $L $P" "aim-tensor convert $L -o $T/x.safetensors"; do
	set -- $cmd
	tool=$1; shift
	"$BIN/$tool" "$@" >/dev/null 2>"$T/err"
	[ $? -eq 1 ] || fail "$tool on a legacy file: exit status"
	err_has "$L: a PyTorch checkpoint in the legacy format" "$tool legacy"
	err_has "torch.save(torch.load(" "$tool legacy"
done
[ ! -e "$T/x.safetensors" ] || fail "aim-tensor convert wrote an output"

# a directory as a head, an empty head file
"$BIN/aim-eval" --head "$T/pth" "$P" >/dev/null 2>"$T/err"
[ $? -eq 1 ] || fail "--head DIR: exit status"
err_has "$T/pth: a directory, not a weights file" "--head DIR"
: >"$T/empty"
"$BIN/aim-eval" --head "$T/empty" "$P" >/dev/null 2>"$T/err"
[ $? -eq 1 ] || fail "--head EMPTY: exit status"
err_has "$T/empty: an empty file" "--head EMPTY"

# a model file with a tensor of no known part: an error naming it
"$PYTHON" - "$D/model.safetensors" "$T/extra.safetensors" <<'PY' || fail "python"
import json, struct, sys
buf = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", buf[:8])[0]
h = json.loads(buf[8:8 + n]); data = buf[8 + n:]
end = max(v["data_offsets"][1] for k, v in h.items() if k != "__metadata__")
h["decoder.proj.weight"] = {"dtype": "F32", "shape": [2], "data_offsets": [end, end + 8]}
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + data[:end] + b"\0" * 8)
PY
"$BIN/aim-extract" -m "$T/extra.safetensors" "$P" -o "$T/f.aimt" 2>"$T/err"
[ $? -eq 1 ] || fail "unknown tensor: exit status"
err_has "$T/extra.safetensors: unexpected tensor decoder.proj.weight" "unknown tensor"
[ ! -e "$T/f.aimt" ] || fail "an output was written"
exit 0
