cmd: aim-probe --probe cubic -o h.safetensors $DATA/probe/feats.aimt
exit: 2
stderr: --probe: 'cubic' is not attentive or linear
