cmd: aim-tensor to-npy $DATA/stream/good.aimt
exit: 2
stderr: to-npy needs -o DIR
