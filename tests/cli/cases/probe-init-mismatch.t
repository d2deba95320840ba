cmd: aim-probe --heads 2 --queries 2 --epochs 1 --init $DATA/probe/head_abc.safetensors -o h.safetensors $DATA/probe/feats.aimt
exit: 1
stderr: does not match the one asked for
stderr-lines: 1
