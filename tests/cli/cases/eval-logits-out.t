# the logits written by --logits-out score the same as the head did
cmd: aim-eval -q --head $DATA/probe/head_abc.safetensors --logits-out l.aimt $DATA/probe/feats.aimt > a.txt && aim-eval l.aimt > b.txt && cmp a.txt b.txt && head -1 a.txt
exit: 0
stdout: n 8
