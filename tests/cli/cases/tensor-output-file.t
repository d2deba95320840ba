cmd: aim-tensor cat -o out.aimt $DATA/stream/good.aimt $DATA/stream/good.aimt && ls -A && aim-tensor info out.aimt
exit: 0
stdout: out.aimt
stderr: 6 records
