cmd: aim-tensor cat $DATA/stream/good.aimt $DATA/stream/trunc.aimt > out.aimt; echo $?; aim-tensor info out.aimt
exit: 0
stdout: 1
stderr: 5 records
