# a stream on stdin is held in memory, and says so; the head then evaluates
cmd: cat $DATA/probe/feats.aimt | aim-probe --heads 2 --epochs 2 --batch 4 -o h.safetensors && aim-eval --head h.safetensors $DATA/probe/feats.aimt
exit: 0
stderr: into memory
stdout: n 8
