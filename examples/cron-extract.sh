#!/bin/sh
# Keep a retrieval bank of a directory of images up to date, from cron:
#
#   examples/cron-extract.sh IMAGE_DIR MODEL BANK_DIR
#
# Each run extracts features of the images that are new or changed since
# the last run (size or mtime; also the content with AIM_CHECKSUM=1), drops
# the images that are gone, and leaves
#   BANK_DIR/bank.idx    the index (aim-retrieve --bank), replaced atomically
#   BANK_DIR/errors.tsv  NAME<TAB>REASON of every image that could not be read
# A killed run resumes where it stopped (the index is committed every
# AIM_COMMIT_EVERY images); a second run started while one is going says so
# and exits 75 without touching anything. Exit 0 when the only problems
# were bad images, 1 on a real failure, 2 on a usage error.
#
# Environment: AIM_BIN (the tools; default build/bin beside this script,
# else PATH), AIM_SIZE (224), AIM_PATCH (14), AIM_LAYERS (the model's probe
# layers), AIM_POOL (mean), AIM_ARCH, AIM_BATCH (1: see aim-retrieve(1),
# CRON), AIM_COMMIT_EVERY (256), AIM_CHECKSUM (0), AIM_SHARD (I/N: this
# machine's part of the images), AIM_THREADS. See aim-retrieve(1), CRON.
set -u
me=cron-extract.sh
if [ $# -ne 3 ]; then
	echo "usage: $me IMAGE_DIR MODEL BANK_DIR" >&2
	exit 2
fi
images=$1 model=$2 bank=$3
here=$(cd "$(dirname "$0")" && pwd)
bin=${AIM_BIN:-$here/../build/bin}
if [ ! -x "$bin/aim-patchify" ]; then
	p=$(command -v aim-patchify) || {
		echo "$me: aim-patchify is neither in $bin (set AIM_BIN) nor on PATH ($PATH)" >&2
		exit 1
	}
	bin=$(dirname "$p")
fi
[ -d "$images" ] || { echo "$me: $images: not a directory" >&2; exit 1; }
mkdir -p "$bank" || exit 1

# One run at a time per bank: the lock is held on descriptor 9 until this
# shell and every tool it started have ended (also when killed).
exec 9>>"$bank/lock" || exit 1
if ! flock -n 9; then
	echo "$me: $bank is being updated by another run (lock $bank/lock); nothing done" >&2
	exit 75
fi

# What a killed run left behind: its work directory and temporary files.
rm -rf "$bank"/run.* "$bank"/.bank.idx.tmp*
tmp=$bank/run.$$
mkdir -p "$tmp" || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
check=${AIM_CHECKSUM:+--checksum}
[ "${AIM_CHECKSUM:-0}" = 0 ] && check=
shard=${AIM_SHARD:+--shard $AIM_SHARD}

# 1. What is on disk now (names, sizes, mtimes; no decoding).
"$bin/aim-patchify" -q --list --classes none $check $shard -o "$tmp/listing.tsv" "$images" ||
	exit 1
# 2. What the bank holds, with the stamps it was extracted from.
old=
if [ -f "$bank/bank.idx" ]; then
	"$bin/aim-retrieve" --bank "$bank/bank.idx" --list -o "$tmp/done.tsv" || exit 1
	old="--bank $bank/bank.idx"
else
	: >"$tmp/done.tsv"
fi
# 3. The rest through the model into the index; every stage's status is kept,
# since a POSIX shell reports only the last one of a pipeline.
{
	"$bin/aim-patchify" --classes none --skip-done "$tmp/done.tsv" $check $shard \
		--errors "$tmp/errors.tsv" --max-errors 999999999999 \
		--size "${AIM_SIZE:-224}" --patch "${AIM_PATCH:-14}" "$images"
	echo $? >"$tmp/rc.patchify"
} | {
	"$bin/aim-extract" -q -m "$model" ${AIM_ARCH:+--arch "$AIM_ARCH"} \
		${AIM_LAYERS:+--layers "$AIM_LAYERS"} --pool "${AIM_POOL:-mean}" \
		--batch "${AIM_BATCH:-1}"
	echo $? >"$tmp/rc.extract"
} | {
	"$bin/aim-retrieve" $old --add - --sync "$tmp/listing.tsv" \
		--commit-every "${AIM_COMMIT_EVERY:-256}" --save-index "$bank/bank.idx"
	echo $? >"$tmp/rc.retrieve"
}
for stage in patchify extract retrieve; do
	rc=$(cat "$tmp/rc.$stage" 2>/dev/null || echo 1)
	if [ "$rc" != 0 ]; then
		echo "$me: aim-$stage failed (exit $rc); $bank/bank.idx holds what was committed" >&2
		exit 1
	fi
done
mv -f "$tmp/errors.tsv" "$bank/errors.tsv" || exit 1
exit 0
