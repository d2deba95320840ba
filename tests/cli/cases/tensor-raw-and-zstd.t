cmd: aim-tensor info $DATA/stream/raw.aimt $DATA/stream/good.aimt
exit: 0
stderr: 6 records, 12 samples
