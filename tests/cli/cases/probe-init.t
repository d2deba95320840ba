# continuing from a head keeps its shape and metadata
cmd: aim-probe -q --heads 2 --epochs 1 --init $DATA/probe/head_abc.safetensors -o h.safetensors $DATA/probe/feats.aimt && aim-eval --head h.safetensors $DATA/probe/feats.aimt
exit: 0
stdout: n 8
