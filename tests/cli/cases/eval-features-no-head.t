cmd: aim-eval $DATA/probe/feats.aimt
exit: 1
stderr: needs --head
