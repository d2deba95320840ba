# dimension 8 features without aim.config: the documented default head count
# (1 below 128; aim-probe(1) --heads), said with -v
cmd: aim-probe -v --epochs 1 -o h.safetensors $DATA/probe/feats.aimt
exit: 0
stderr: the features carry no aim.config: 1 attention heads of width 8
