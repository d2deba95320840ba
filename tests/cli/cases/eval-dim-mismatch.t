cmd: aim-eval --head $DATA/probe/head_abc.safetensors $DATA/probe/dim16.aimt
exit: 1
stderr: dimension 16 but the head expects 8
stderr-lines: 1
