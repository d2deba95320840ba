# hand-computed: the tie in row 3 goes to the lower class index (a), so
# top-1 is 3/4; top-5 of 3 classes counts every sample
cmd: aim-eval $DATA/probe/logits.aimt
exit: 0
stdout: n 4  top-1 75.000  top-5 100.000
stdout: c -> a: 1
