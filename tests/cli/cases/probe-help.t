cmd: aim-probe --help
exit: 0
stdout: Usage: aim-probe
stdout: --label-smoothing
