cmd: aim-tensor cat -o out.aimt $DATA/stream/good.aimt $DATA/stream/trunc.aimt; echo "exit $?"; ls -A
exit: 0
stdout: exit 1
stderr: trunc.aimt record 2
stdout-not: out.aimt
stdout-not: tmp
