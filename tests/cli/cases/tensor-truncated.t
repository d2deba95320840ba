cmd: aim-tensor info $DATA/stream/trunc.aimt
exit: 1
stderr: trunc.aimt record 2: stream ends inside a record (truncated)
stdout: record 1
stderr-lines: 1
