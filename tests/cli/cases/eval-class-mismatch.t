cmd: aim-eval --head $DATA/probe/head_abc.safetensors $DATA/probe/xyz.aimt
exit: 1
stderr: class list differs from the head's
stderr-lines: 1
