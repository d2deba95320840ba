cmd: aim-probe --lr 1e-3,abc -o h.safetensors $DATA/probe/feats.aimt
exit: 2
stderr: --lr
