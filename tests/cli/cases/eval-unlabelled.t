cmd: aim-eval --head $DATA/probe/head_abc.safetensors $DATA/probe/unlabelled.aimt
exit: 1
stderr: no 'label' tensor
stderr-lines: 1
