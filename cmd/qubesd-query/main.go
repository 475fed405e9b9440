// Command qubesd-query makes one raw Admin API call, for scripts and
// debugging, like the reference tool of the same name:
//
//	qubesd-query [-e|--empty] [-c|--connect SOCKET] [--fail] [--null]
//	             [--single-line] [--max-bytes N] SRC METHOD DEST [ARG]
//
// It sends "METHOD+ARG SRC name DEST\0" followed by the payload read from
// standard input (nothing with -e), and copies the reply to standard output
// verbatim, starting at its code byte, as it arrives. The socket is -c, else
// $QUBESD_SOCKET, else /var/run/qubesd.sock.
//
// Exit status: 0; with --fail, the reply's code (0 success, 1 event stream,
// 2 exception) or 1 if the reply is empty or not a reply; 2 for usage
// errors; 1 if the daemon cannot be reached.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
