cmd: aim-tensor head -n 2 $DATA/stream/good.aimt | aim-tensor info -
exit: 0
stderr: 2 records, 4 samples
