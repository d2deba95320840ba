cmd: aim-probe --heads 3 -o h.safetensors $DATA/probe/feats.aimt
exit: 1
stderr: 3 heads do not divide the dimension 8
