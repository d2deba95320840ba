cmd: aim-tensor info $DATA/stream/good.aimt | head -c 10
exit: 0
