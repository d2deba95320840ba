cmd: script -qec "aim-tensor cat $DATA/stream/good.aimt" /dev/null
exit: 1
stdout: refusing to write binary data to a terminal
