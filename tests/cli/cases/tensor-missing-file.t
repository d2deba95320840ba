cmd: aim-tensor info nonexistent.aimt
exit: 1
stderr: nonexistent.aimt: No such file or directory
stderr-lines: 1
