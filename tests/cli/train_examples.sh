#!/bin/sh
# The runnable EXAMPLES of man/aim-train.1, on small synthetic streams
# (the Fashion-MNIST and mpirun ones need data and time; their parts are
# covered by train_run.sh and train_mpi.sh).
set -eu
$PYTHON -c 'import numpy' 2>/dev/null || { echo "no numpy for $PYTHON"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
$PYTHON "$AIM_TOP/tests/ref/train_ref.py" make-stream train.aimt --n 1200 --grid 4 4 --patch 4 --channels 1 --seed 8
$PYTHON "$AIM_TOP/tests/ref/train_ref.py" make-stream val.aimt --n 12 --grid 4 4 --patch 4 --channels 1 --seed 9
PATH="$BIN:$PATH"
# every example line that starts with aim-train or aim-extract, run as written
sed -n '/^\.SH EXAMPLES/,/^\.SH SEE ALSO/p' "$AIM_TOP/man/aim-train.1" |
	sed -e 's/\\-/-/g' -e 's/\\e$/\\/' |
	awk '/^\.nf/{on=1; next} /^\.fi/{on=0; print "#END"; next} on && !/^\.RS|^\.RE/' >cmds.txt
awk 'BEGIN{RS="#END\n"} /^(aim-train --dim|aim-train --resume|aim-extract)/ || /\naim-train --resume/' cmds.txt >run.sh
grep -q "aim-train --resume run/ --steps 150 train.aimt" run.sh || { cat cmds.txt; exit 1; }
sh -e run.sh 2>err || { cat err; exit 1; }
[ -s features.aimt ] && [ -f run/step-00000150.safetensors ] && [ -f run/step-00000100.safetensors ]
[ "$(wc -l <run/log.csv)" -eq 151 ]
