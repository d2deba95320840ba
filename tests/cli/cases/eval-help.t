cmd: aim-eval --help
exit: 0
stdout: Usage: aim-eval
stdout: --logits-out
