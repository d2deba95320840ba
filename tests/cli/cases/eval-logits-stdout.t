# logits on stdout: the report moves to stderr and the stream stays clean
cmd: aim-eval --head $DATA/probe/head_abc.safetensors --logits-out - $DATA/probe/feats.aimt | aim-eval -q
exit: 0
stderr: n 8
stdout: n 8
