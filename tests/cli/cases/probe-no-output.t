cmd: aim-probe $DATA/probe/feats.aimt
exit: 2
stderr: -o HEAD.safetensors
