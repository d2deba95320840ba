cmd: aim-eval --head nohead.safetensors $DATA/probe/feats.aimt
exit: 1
stderr: nohead.safetensors
stderr-lines: 1
