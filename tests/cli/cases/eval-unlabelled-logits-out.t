# without labels, --logits-out still writes the logits
cmd: aim-eval --head $DATA/probe/head_abc.safetensors --logits-out l.aimt $DATA/probe/unlabelled.aimt && aim-tensor info l.aimt
exit: 0
stderr: no labelled samples: wrote logits only
