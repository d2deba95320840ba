cmd: aim-tensor info $DATA/stream/offsets.aimt
exit: 1
stderr: offsets.aimt record 0: stream ends inside a record
