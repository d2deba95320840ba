cmd: aim-probe -q --probe linear --linear-bias --epochs 1 -o h.safetensors $DATA/probe/feats.aimt && aim-tensor info h.safetensors
exit: 0
stdout: head.linear.bias
stdout-not: head.k.weight
