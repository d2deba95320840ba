# a validation stream whose class list differs from the training one
cmd: aim-probe --heads 2 --epochs 1 --val $DATA/probe/xyz.aimt -o h.safetensors $DATA/probe/feats.aimt
exit: 1
stderr: the class list differs from the training stream's
