package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/qubesgo/qubesd/sdk/admin"
)

const prog = "qubesd-query"

// maxPayload is the reference tool's limit on the payload it reads.
const maxPayload = admin.MaxRequestSize

// maxLine is the default limit of --single-line.
const maxLine = 1024

type options struct {
	socket     string
	empty      bool
	fail       bool
	null       bool
	singleLine bool
	maxBytes   int
}

// usageError is a command-line mistake: exit status 2.
type usageError string

func (e usageError) Error() string { return string(e) }

// run executes one qubesd-query invocation and returns its exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	opt, pos, fs, err := parseArgs(args, getenv)
	if err == pflag.ErrHelp {
		fmt.Fprintf(stdout, "%s\nlow-level qubesd interrogation tool\n\noptions:\n%s", usageLine, fs.FlagUsages())
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s\n%s: error: %v\n", usageLine, prog, err)
		return 2
	}
	payload, err := readPayload(opt, stdin)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s\n%s: error: %v\n", usageLine, prog, err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %v\n", prog, err)
		return 1
	}
	src, method, dest, arg := pos[0], pos[1], pos[2], ""
	if len(pos) == 4 {
		arg = pos[3]
	}
	// The reference tool sends whatever it is given; so do we, so that it
	// can probe how a daemon handles odd requests.
	req := []byte(method + "+" + arg + " " + src + " name " + dest + "\x00")
	req = append(req, payload...)

	reply, err := admin.New(opt.socket).Send(ctx, req)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %v\n", prog, err)
		return 1
	}
	defer reply.Close()
	code, err := copyReply(stdout, reply)
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(stderr, "%s: error: %v\n", prog, err)
		}
		return 1
	}
	if opt.fail {
		// As the reference: --fail returns before --null is honoured.
		return code
	}
	if opt.null {
		stdout.Write([]byte{0})
	}
	return 0
}

const usageLine = "usage: " + prog + " [-h] [-c PATH] [-e] [--fail] [--max-bytes N] [--single-line] [--null] SRC METHOD DEST [ARGUMENT]"

func parseArgs(args []string, getenv func(string) string) (options, []string, *pflag.FlagSet, error) {
	var opt options
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints usage and errors
	fs.Usage = func() {}
	fs.SortFlags = false
	def := getenv(admin.SocketEnv)
	if def == "" {
		def = admin.DefaultSocket
	}
	fs.StringVarP(&opt.socket, "connect", "c", def, "path to the qubesd unix socket (default: $"+admin.SocketEnv+", else "+admin.DefaultSocket+")")
	fs.BoolVarP(&opt.empty, "empty", "e", false, "do not read standard input; send an empty payload")
	fs.BoolVar(&opt.fail, "fail", false, "exit with the reply's code (non-zero unless it succeeded)")
	fs.IntVar(&opt.maxBytes, "max-bytes", -1, "read at most `N` bytes of payload")
	fs.BoolVar(&opt.singleLine, "single-line", false, "read one line of printable ASCII as payload (newline removed)")
	fs.BoolVar(&opt.null, "null", false, "print a NUL byte after the reply")
	if err := fs.Parse(args); err != nil {
		return opt, nil, fs, err
	}
	pos := fs.Args()
	if len(pos) < 3 || len(pos) > 4 {
		return opt, nil, fs, usageError("expected SRC METHOD DEST [ARGUMENT]")
	}
	if opt.maxBytes > maxPayload {
		return opt, nil, fs, usageError(fmt.Sprintf("maximum payload too large (max %d)", maxPayload))
	}
	return opt, pos, fs, nil
}

// readPayload reads the payload as the reference tool does.
func readPayload(opt options, stdin io.Reader) ([]byte, error) {
	if opt.empty {
		return nil, nil
	}
	limit := maxPayload
	if opt.singleLine {
		limit = maxLine
	}
	if opt.maxBytes >= 0 {
		limit = opt.maxBytes
	}
	if !opt.singleLine {
		// One byte more than allowed tells "too long" from "exactly full".
		b, err := io.ReadAll(io.LimitReader(stdin, maxPayload+1))
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		if len(b) > limit {
			return nil, usageError(fmt.Sprintf("payload too long (max %d)", limit))
		}
		return b, nil
	}
	// One printable-ASCII line, read byte by byte so that nothing after the
	// newline is consumed: the volume import script passes the rest of its
	// standard input on to dd.
	var line []byte
	var b [1]byte
	for range limit {
		_, err := io.ReadFull(stdin, b[:])
		c := b[0]
		if errors.Is(err, io.EOF) {
			return nil, usageError("end of input without a newline")
		}
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		if c == '\n' {
			return line, nil
		}
		if c < 0x20 || c > 0x7e {
			return nil, usageError(fmt.Sprintf("invalid byte %d in input", c))
		}
		line = append(line, c)
	}
	return nil, usageError(fmt.Sprintf("no newline found in first %d bytes", limit))
}

// copyReply copies the reply to w as it arrives, starting at its code byte,
// and returns the code. A reply that does not start with a digit (or is
// empty) is not copied and gives code 1.
func copyReply(w io.Writer, r io.Reader) (int, error) {
	var first [1]byte
	if _, err := io.ReadFull(r, first[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return 1, nil
		}
		return 1, err
	}
	if first[0] < '0' || first[0] > '9' {
		return 1, nil
	}
	if _, err := w.Write(first[:]); err != nil {
		return 1, err
	}
	// Copy chunk by chunk so that event streams show up as they come.
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return 1, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return int(first[0] - '0'), nil
		}
		if err != nil {
			return 1, err
		}
	}
}
