#!/bin/sh
# Installs the Debian packages aim needs. Idempotent and quick when
# everything is present: apt-get runs only for packages that are missing.
# Run as root (or through sudo).
#   scripts/setup.sh          everything: build, tests, references, benchmarks, demo
#   scripts/setup.sh demo     only what the Fashion-MNIST demo needs (no PyTorch)
set -eu
BUILD="build-essential pkg-config make
libjpeg62-turbo-dev libpng-dev zlib1g-dev libwebp-dev libtiff-dev libzstd-dev libopenblas-dev
libjansson-dev libarchive-dev libzip-dev libopenmpi-dev openmpi-bin libdnnl-dev"
DEMO="python3 dataset-fashion-mnist"
TESTS="clang libclang-rt-14-dev zstd util-linux
python3-numpy python3-torch python3-torchvision python3-pil
python3-faiss python3-zstandard lomiri-wallpapers-16.04"
case "${1:-all}" in
demo) PACKAGES="$BUILD $DEMO" ;;
all) PACKAGES="$BUILD $DEMO $TESTS" ;;
*) echo "usage: scripts/setup.sh [all|demo]" >&2; exit 2 ;;
esac
missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "setup: installing:$missing" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi
echo "setup: all build and test dependencies present" >&2
