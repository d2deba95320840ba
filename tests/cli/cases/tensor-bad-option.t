cmd: aim-tensor --bogus
exit: 2
stderr: unrecognized option
