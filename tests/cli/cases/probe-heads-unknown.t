# dimension 8 features without aim.config: the number of heads must be given
cmd: aim-probe -o h.safetensors $DATA/probe/feats.aimt
exit: 1
stderr: give --heads
stderr-lines: 1
