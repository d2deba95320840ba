# a looping producer on stdin: the first pass (6 samples) is held, the
# second is not read
cmd: cat $DATA/probe/loop.aimt | aim-probe --heads 2 --epochs 2 -o h.safetensors
exit: 0
stderr: the stream loops (aim.epoch 1)
stderr: held 6 samples
