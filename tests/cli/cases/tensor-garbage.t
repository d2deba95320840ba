cmd: aim-tensor info $DATA/stream/garbage.aimt
exit: 1
stderr: garbage.aimt: not an aim tensor stream
stderr-lines: 1
