cmd: aim-tensor info $DATA/stream/absurd.aimt
exit: 1
stderr: absurd.aimt record 1: header length 4611686018427387904 is out of range
