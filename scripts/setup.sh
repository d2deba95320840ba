#!/bin/sh
# Installs every Debian package that aim's build, tests, benchmarks and
# demo need. Idempotent and quick when everything is present: apt-get runs
# only for packages that are missing. Run as root (or through sudo).
set -eu
PACKAGES="
build-essential pkg-config make
libjpeg62-turbo-dev libpng-dev libzstd-dev libopenblas-dev
libjansson-dev libarchive-dev libzip-dev
clang libclang-rt-14-dev
libopenmpi-dev openmpi-bin
python3 python3-numpy python3-torch python3-torchvision python3-pil
python3-faiss python3-zstandard
dataset-fashion-mnist zstd
"
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
