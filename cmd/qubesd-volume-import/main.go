// Command qubesd-volume-import is the qrexec service behind
// admin.vm.volume.Import and admin.vm.volume.ImportWithSize: install it as
// /etc/qubes-rpc/admin.vm.volume.Import with admin.vm.volume.ImportWithSize
// a symbolic link to it, where the reference installs its shell script.
// The Python qvm-volume import (and any qrexec caller) then works
// unchanged, without the script, dd or sudo in the data path.
//
// As the reference's service, it runs as
//
//	QREXEC_REMOTE_DOMAIN=<caller> QREXEC_REQUESTED_TARGET=<qube> admin.vm.volume.Import <volume>
//
// with the data on stdin (for ImportWithSize, preceded by a line holding
// the size in decimal). It asks qubesd's internal socket to begin the
// import (internal.vm.volume.ImportBegin, as the caller: the permission
// event names it), writes exactly the size it is told to the path qubesd
// hands out, sparse, and ends the import (internal.vm.volume.ImportEnd).
// It prints qubesd's reply to stdout as it came — "0\0" on success, the
// exception otherwise — and exits 1 on failure.
//
// The internal socket is $QUBESD_INTERNAL_SOCKET, else
// /var/run/qubesd.internal.sock.
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// maxSizeLine is the longest size line ImportWithSize reads, newline
// included (the reference reads at most 21 bytes).
const maxSizeLine = 21

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	service := filepath.Base(args[0])
	withSize := service == "admin.vm.volume.ImportWithSize"
	if len(args) != 2 || args[1] == "" {
		fmt.Fprintf(stderr, "usage: %s VOLUME (with QREXEC_REMOTE_DOMAIN and QREXEC_REQUESTED_TARGET set, data on stdin)\n", service)
		return 2
	}
	src, vm, volume := getenv("QREXEC_REMOTE_DOMAIN"), getenv("QREXEC_REQUESTED_TARGET"), args[1]
	if src == "" || vm == "" {
		fmt.Fprintf(stderr, "%s: QREXEC_REMOTE_DOMAIN and QREXEC_REQUESTED_TARGET must name the caller and the qube\n", service)
		return 2
	}
	socket := getenv("QUBESD_INTERNAL_SOCKET")
	if socket == "" {
		socket = "/var/run/qubesd.internal.sock"
	}
	c := admin.New(socket)
	in := bufio.NewReaderSize(stdin, 1<<20)

	var size []byte
	if withSize {
		line, err := in.ReadSlice('\n')
		if err != nil || len(line) > maxSizeLine {
			fmt.Fprintf(stderr, "%s: the first line of input must be the size in bytes (at most %d characters)\n", service, maxSizeLine-1)
			return 1
		}
		size = bytes.TrimSuffix(line, []byte("\n"))
	}

	call := func(method string, payload []byte) ([]byte, error) {
		req, err := admin.EncodeRequest(src, method, vm, volume, payload)
		if err != nil {
			return nil, err
		}
		return c.Raw(ctx, req)
	}
	reply, err := call("internal.vm.volume.ImportBegin", size)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", service, err)
		return 1
	}
	body, err := admin.ParseReply(reply)
	if err != nil {
		stdout.Write(reply) // the exception, for the caller to parse
		return 1
	}
	n, path, err := admin.ParseImportBegin(body)
	var copyErr error
	if err != nil {
		copyErr = err
	} else {
		copyErr = admin.WriteImport(ctx, path, in, n, nil)
	}
	reply, err = call("internal.vm.volume.ImportEnd", admin.ImportEndPayload(copyErr))
	if err != nil {
		fmt.Fprintf(stderr, "%s: ending the import: %v\n", service, err)
		return 1
	}
	stdout.Write(reply)
	if _, err := admin.ParseReply(reply); err != nil || copyErr != nil {
		return 1
	}
	return 0
}
