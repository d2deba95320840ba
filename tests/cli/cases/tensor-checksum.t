cmd: aim-tensor info $DATA/stream/badsum.aimt
exit: 1
stderr: badsum.aimt record 2: corrupt zstd frame
stderr-lines: 1
