cmd: cat $DATA/stream/good.aimt $DATA/stream/good.aimt | aim-tensor info
exit: 0
stdout: record 5
stderr: 6 records, 12 samples
