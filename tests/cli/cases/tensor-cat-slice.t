cmd: aim-tensor cat --batch 4 --skip 1 --count 3 $DATA/stream/good.aimt | aim-tensor info --json
exit: 0
stdout: "shape":[3,4,12]
stdout: img0_1.png
stderr: 1 records, 3 samples
