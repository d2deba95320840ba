#!/bin/sh
# The CUDA kernels' logic, compiled for the CPU through a small emulation of
# the CUDA programming model, against the CPU ops (no GPU needed).
# The emulation runs thousands of emulated threads: under the sanitizers it
# takes minutes and checks nothing the plain build does not, so that pass
# skips it.
if [ "${SAN:-0}" = 1 ]; then
	echo "emulated CUDA kernels are checked in the plain build, not under SAN=1"
	exit 77
fi
exec sh "$AIM_TOP/tests/gpu/emu_check.sh"
