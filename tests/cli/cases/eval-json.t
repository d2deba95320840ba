cmd: aim-eval --json $DATA/probe/logits.aimt
exit: 0
stdout: "n":4,"top1":75.0,"top5":100.0
stdout: "per_class":{"a":100.0,"b":100.0,"c":50.0}
