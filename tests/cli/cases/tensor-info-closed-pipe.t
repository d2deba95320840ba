cmd: aim-tensor info $(for i in $(seq 300); do echo $DATA/stream/good.aimt; done) | head -n 1
exit: 0
stdout: record 0
stderr-lines: 0
