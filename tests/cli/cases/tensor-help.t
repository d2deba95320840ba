cmd: aim-tensor --help
exit: 0
stdout: Usage: aim-tensor COMMAND
