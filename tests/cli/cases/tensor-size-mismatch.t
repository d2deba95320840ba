cmd: aim-tensor info $DATA/stream/shape.aimt
exit: 1
stderr: shape.aimt record 1: tensor 'label': 16 bytes for I64 of 3 elements
