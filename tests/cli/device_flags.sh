#!/bin/sh
# --device and --precision on the tools that run the trunk: bad values are
# usage errors (exit 2), a precision the backend lacks and an unusable CUDA
# device are runtime errors naming the reason (exit 1), --version lists the
# backends, -v names the one in use, and --device cpu --precision fp32
# gives exactly the default's features.
set -u
M=$AIM_TOP/tests/data/model/tiny/model.safetensors
P=$AIM_TOP/tests/data/model/tiny/patches.aimt
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for tool in aim-extract aim-train aim-probe aim-eval; do
	X=$BIN/$tool
	"$X" --help | grep -q -- "--device DEV" || fail "$tool --help lacks --device"
	"$X" --help | grep -q -- "--precision P" || fail "$tool --help lacks --precision"
	"$X" --version | grep -q "^backends: cpu (OpenBLAS .*threads); cuda: ." ||
		fail "$tool --version: $("$X" --version)"
	"$X" --device gpu -m "$M" "$P" >/dev/null 2>"$T/err"
	[ $? -eq 2 ] && grep -q "'gpu' is not cpu, cuda, cuda:N or auto" "$T/err" || fail "$tool --device gpu"
	"$X" --device cuda:-1 -m "$M" "$P" >/dev/null 2>&1
	[ $? -eq 2 ] || fail "$tool --device cuda:-1"
	"$X" --precision fp16 -m "$M" "$P" >/dev/null 2>&1
	[ $? -eq 2 ] || fail "$tool --precision fp16"
done
"$BIN/aim-probe" --device cpu -o "$T/h.safetensors" "$P" >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q "need -m MODEL" "$T/err" || fail "aim-probe --device without -m"
"$BIN/aim-eval" --device cpu --head "$T/h.safetensors" "$P" >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q "need -m MODEL" "$T/err" || fail "aim-eval --device without -m"
X=$BIN/aim-extract
"$X" -q -m "$M" "$P" -o "$T/a.aimt" || fail "aim-extract"
"$X" -v --device cpu --precision fp32 -m "$M" "$P" -o "$T/b.aimt" 2>"$T/err" || fail "aim-extract --device cpu"
grep -q "backend: cpu (" "$T/err" || fail "-v does not name the backend"
cmp "$T/a.aimt" "$T/b.aimt" || fail "--device cpu --precision fp32 changed the features"
# bf16 on the CPU: where oneDNN runs it natively it works; below AVX512_BF16
# (ONEDNN_MAX_CPU_ISA stands in for an older CPU) or without oneDNN it is a
# runtime error naming the reason, and nothing is written.
for tool in aim-extract aim-train aim-probe aim-eval; do
	"$BIN/$tool" --version | grep -q "^backends: cpu (OpenBLAS .*oneDNN [0-9.]* ISA [a-z0-9_]*, bf16 " ||
		{ "$BIN/$tool" --version | grep -q "^backends: cpu (OpenBLAS [^,]*, [0-9]* threads)" ||
			fail "$tool --version does not say whether oneDNN is there"; }
done
if "$X" --version | grep -q "bf16 brg:"; then
	"$X" -v --device cpu --precision bf16 -m "$M" "$P" -o "$T/c.aimt" 2>"$T/err" ||
		fail "bf16 on the cpu: $(cat "$T/err")"
	grep -q "GEMM precision bf16" "$T/err" || fail "-v does not say bf16: $(cat "$T/err")"
	ONEDNN_MAX_CPU_ISA=AVX512_CORE "$X" --device cpu --precision bf16 -m "$M" "$P" \
		-o "$T/f.aimt" 2>"$T/err"
	[ $? -eq 1 ] && grep -q "cpu backend does not offer bf16 matrix products: oneDNN would only emulate bf16 on this CPU (ISA avx512_core" "$T/err" ||
		fail "bf16 on a CPU without it: $(cat "$T/err")"
	[ ! -e "$T/f.aimt" ] || fail "an output was written"
	"$BIN/aim-probe" -q -m "$M" --epochs 1 -o "$T/h.safetensors" "$P" || fail "aim-probe -m"
	for run in "aim-train --dim 48 --depth 2 --heads 2 --steps 1 -o $T/run $P" \
		"aim-probe -m $M --epochs 1 -o $T/g.safetensors $P" \
		"aim-eval -m $M --head $T/h.safetensors $P"; do
		tool=${run%% *}
		ONEDNN_MAX_CPU_ISA=AVX2 $BIN/$run --device cpu --precision bf16 >/dev/null 2>"$T/err"
		[ $? -eq 1 ] && grep -q "^$tool: .*oneDNN would only emulate bf16 on this CPU (ISA avx2" "$T/err" ||
			fail "$tool bf16 on a CPU without it: $(cat "$T/err")"
	done
	[ ! -e "$T/g.safetensors" ] || fail "aim-probe wrote a head"
else
	"$X" --device cpu --precision bf16 -m "$M" "$P" -o "$T/c.aimt" 2>"$T/err"
	[ $? -eq 1 ] && grep -q "cpu backend does not offer bf16 matrix products: ." "$T/err" ||
		fail "bf16 on the cpu: $(cat "$T/err")"
fi
"$X" --device cpu --precision tf32 -m "$M" "$P" -o "$T/c.aimt" 2>"$T/err"
[ $? -eq 1 ] && grep -q "cpu backend does not offer tf32" "$T/err" || fail "tf32 on the cpu: $(cat "$T/err")"
if ! "$X" --version | grep -q "cuda: CUDA device"; then
	# no usable GPU here: asking for one fails with the library's reason
	"$X" --device cuda -m "$M" "$P" -o "$T/d.aimt" 2>"$T/err"
	[ $? -eq 1 ] && grep -q "CUDA backend unavailable: ." "$T/err" || fail "--device cuda: $(cat "$T/err")"
	[ ! -e "$T/d.aimt" ] || fail "an output was written"
	# without the NVIDIA driver, say so (the runtime's own words are
	# "CUDA driver version is insufficient")
	if [ -e "$AIM_TOP/${BUILD:-build}/libaim-cuda.so" ] && ! ldconfig -p | grep -q 'libcuda\.so\.1 '; then
		"$X" --version | grep -q "cuda: no NVIDIA driver found" ||
			fail "--version without a driver: $("$X" --version)"
	fi
	# auto falls back to the CPU: the same features
	"$X" -q --device auto -m "$M" "$P" -o "$T/e.aimt" || fail "--device auto"
	cmp "$T/a.aimt" "$T/e.aimt" || fail "--device auto on the CPU changed the features"
fi
exit 0
