#!/bin/sh
# The published ImageNet evaluation of an AIM model (apple/ml-aim
# main_attnprobe.py) as a pipeline:
#
#   examples/in1k-probe.sh IMAGENET_VAL_DIR MODEL [HEAD]
#
# IMAGENET_VAL_DIR  an ImageFolder tree (one directory per class, sorted),
#                   or the flat folder of the ILSVRC validation set with
#                   AIM_LABELS set to its labels file (NAME LABEL lines; see
#                   aim-patchify(1) --labels for making one from the devkit
#                   or LOC_val_solution.csv)
# MODEL             .safetensors, Hugging Face directory, or .pth backbone
#                   (then set AIM_ARCH=aim-600M ...)
# HEAD              the probe head, if the model file does not carry it
#
# Images go through the published val transform (bicubic resize of the
# shorter side to ceil(224/0.875), centre crop 224, ImageNet mean/std), the
# frozen trunk and the attentive head; prints top-1, top-5 and the loss as
# the published script does, then per-class accuracy and confused pairs.
# Environment: AIM_BIN (tools, default build/bin beside this script),
# AIM_SIZE (224), AIM_PATCH (14), AIM_BATCH (16), AIM_ARCH, AIM_THREADS,
# AIM_LABELS (labels file for a flat folder), AIM_CLASSES (its class list,
# one name per line; default: the sorted class names of the labels).
set -eu
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	echo "usage: $0 IMAGENET_VAL_DIR MODEL [HEAD]" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
bin=${AIM_BIN:-$here/../build/bin}
set -- "$1" "$2" ${3:+--head "$3"}
val=$1 model=$2
shift 2
"$bin/aim-patchify" -q --size "${AIM_SIZE:-224}" --patch "${AIM_PATCH:-14}" \
	${AIM_LABELS:+--labels "$AIM_LABELS"} ${AIM_CLASSES:+--classes-file "$AIM_CLASSES"} "$val" |
	"$bin/aim-eval" -m "$model" "$@" ${AIM_ARCH:+--arch "$AIM_ARCH"} --batch "${AIM_BATCH:-16}"
