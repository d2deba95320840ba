cmd: aim-probe -q --heads 2 --queries 2 --epochs 1 -o h.safetensors $DATA/probe/feats.aimt && aim-tensor info h.safetensors
exit: 0
stdout: head.bn.running_mean
stdout: head.bn.running_var
stdout: head.cls_token
stdout: head.k.weight
stdout: head.v.weight
stdout: head.linear.weight
stdout-not: head.linear.bias
