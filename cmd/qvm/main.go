// Command qvm is the Qubes OS command-line toolset in one binary. Called as
// one of its tools — qvm-ls, qvm-prefs, qvm-create, qvm-start, qvm-shutdown,
// ... (by the name it was started under; the Makefile installs those names
// as symbolic links) — it behaves as that tool, with the options and output
// of the Python tool of the same name. Called as qvm, it takes the tool as
// its first argument: qvm ls, qvm prefs, ... docs/cli.md describes them.
//
// Every tool talks to qubesd through the Admin API; the socket is --socket,
// else $QUBESD_SOCKET, else /var/run/qubesd.sock.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}
