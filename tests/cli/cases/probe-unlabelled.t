cmd: aim-probe -o h.safetensors $DATA/probe/unlabelled.aimt; test ! -e h.safetensors
exit: 0
stderr: aim-probe needs labelled features
