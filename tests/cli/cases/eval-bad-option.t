cmd: aim-eval --frobnicate
exit: 2
stderr: Try 'aim-eval --help'
