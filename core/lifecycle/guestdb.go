package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/core/qdb"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/vmm"
)

// QubesDB to the guest under kvm.
//
// Real Qubes carries QubesDB over vchan to a qubesdb-daemon in the guest.
// Under qemu there is no vchan: the kvm domain XML gives the guest a
// virtio-serial port named "org.qubes-os.qubesdb" (the guest's
// /sys/class/virtio-ports/vportNpM/name, device /dev/vportNpM), backed on
// the host by a unix socket qemu listens on, <qube dir>/qubesdb.sock.
// attachGuestDB connects to it while the domain is still paused and pushes
// the qube's DB down it: the content at that instant, then every change in
// the order it was made, until the run ends. Nothing is read back.
//
// # Protocol (version 1)
//
// A stream of lines, each ended by one LF:
//
//	QUBESDB 1            first line: the protocol and its version
//	W <path> <value>     the entry at path is value (written, or replaced)
//	R <path>             the entry at path is gone; a path ending in "/"
//	                     removes every entry under it ("/": all of them)
//	S                    the initial snapshot is complete: every W line
//	                     before it is the DB's content at one instant
//
// The snapshot is the "W" lines between the header and "S", sorted by
// path; changes follow "S" as W and R lines. Paths are QubesDB's
// ([a-zA-Z0-9_./:@-], at most 63 bytes: never a space). A value is the
// rest of the line after the single space that follows the path (it may
// be empty: "W /path " then ends with that space), escaped so that it
// holds no LF or other control byte: "\" is sent as "\\", every byte below
// 0x20 and 0x7f as "\0" and three octal digits ("\0012" for LF); every
// other byte (NUL never occurs: QubesDB values cannot hold one) is itself.
// That is the escaping of printf's %b, so a busybox sh reads a line with
//
//	IFS= read -r line
//	rest=${line#W }; path=${rest%% *}; value=$(printf '%b' "${rest#* }")
//
// (a command substitution drops trailing LFs; printf '%b' "..." >file
// keeps them). A reader must ignore lines it does not know, for later
// versions.
//
// # A guest that does not read
//
// Changes are queued for a writer goroutine, never written under the DB's
// lock (qdb.DB.Mirror's rule). The queue holds at most guestDBQueue
// changes; when a guest lets it fill, the push ends: the error is logged,
// the connection closed once the snapshot is written whole (the guest
// reads the snapshot, perhaps some changes, then EOF), and the guest's
// copy is no longer kept in step for the rest of the run. Dropping single changes
// instead would leave the guest a DB that silently differs from the
// daemon's. A write blocked on a guest that does not read ends when the
// run ends (the stop function closes the connection).

// guestDBPort is the virtio-serial port name the guest looks for.
const guestDBPort = "org.qubes-os.qubesdb"

// guestDBQueue bounds the changes queued for a guest that does not read.
const guestDBQueue = 4096

// maxUnixPath is the longest unix socket path (sun_path holds 108 bytes
// with the terminating NUL).
const maxUnixPath = 107

// guestDBSocket is the host path of qube dir's QubesDB socket.
func guestDBSocket(dir string) string { return filepath.Join(dir, "qubesdb.sock") }

// guestDBSocketChecked is guestDBSocket(dir), or why it cannot be a unix
// socket.
func guestDBSocketChecked(dir string) (string, error) {
	path := guestDBSocket(dir)
	if len(path) > maxUnixPath {
		return "", fmt.Errorf("the QubesDB socket %s is %d bytes long, and a unix socket path has at most %d: "+
			"use a shorter daemon.data_dir or a shorter qube name", path, len(path), maxUnixPath)
	}
	return path, nil
}

// guestDBSocketFor is the QubesDB socket to render for a qube whose
// directory is dir: "" when the flavour has none, or when the path is too
// long for a unix socket (attachGuestDB then fails the start with the
// reason; a path libvirt cannot bind would fail it with a less clear one).
func (m *Manager) guestDBSocketFor(dir string) string {
	if m.opts.Renderer == nil || m.opts.Renderer.Flavour() != vmm.FlavourKVM || dir == "" {
		return ""
	}
	p, _ := guestDBSocketChecked(dir)
	return p
}

// attachGuestDB connects q's QubesDB to its freshly created (still paused)
// domain, for the flavours that carry QubesDB to the guest themselves
// (kvm). It returns the function that ends the push when the run ends
// (nil: nothing to end).
func (m *Manager) attachGuestDB(ctx context.Context, q *qubes.Qube, db *qdb.DB) (stop func(), err error) {
	if m.opts.Renderer == nil || m.opts.Renderer.Flavour() != vmm.FlavourKVM {
		return nil, nil
	}
	path, err := guestDBSocketChecked(q.DirPath())
	if err != nil {
		return nil, err
	}
	conn, err := dialGuestDB(ctx, path)
	if err != nil {
		return nil, err
	}
	end := pushGuestDB(conn, db, m.log.With("qube", q.Name()), guestDBQueue)
	return func() {
		end()
		// qemu has gone (the run ends after the domain stopped): its
		// socket would otherwise stay in the qube's directory
		_ = os.Remove(path)
	}, nil
}

// dialGuestDB connects to qemu's socket, retrying for up to 5 s (or until
// ctx ends) while it is missing or refuses: qemu may still be setting it
// up. The error is the last attempt's.
func dialGuestDB(ctx context.Context, path string) (net.Conn, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		// a unix connect does not wait for the peer: no timeout needed
		conn, err := net.Dial("unix", path)
		if err == nil {
			return conn, nil
		}
		retry := errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
		if retry && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
				continue
			}
		}
		return nil, fmt.Errorf("connecting to the domain's QubesDB channel %s: %w "+
			"(the domain XML template must define a virtio-serial channel %q on that socket, "+
			"as the embedded kvm.xml does; see qemu's log for the domain)", path, err, guestDBPort)
	}
}

// pushGuestDB sends db's snapshot and then its changes down conn, as the
// protocol above says, queueing at most limit changes. The returned stop
// ends the push, closes conn, waits for the writer and removes nothing
// else; it may be called more than once.
func pushGuestDB(conn net.Conn, db *qdb.DB, log hclog.Logger, limit int) (stop func()) {
	queue := make(chan []byte, limit)
	var ended atomic.Bool        // overflowed or stopped: no more changes queued
	var snapshotSent atomic.Bool // the header and snapshot are written
	overflowed := make(chan struct{})
	snapshot, unmirror := db.Mirror(func(c qdb.Change) {
		if ended.Load() {
			return
		}
		var line []byte
		if c.Removed {
			line = appendRemove(nil, c.Path)
		} else {
			line = appendWrite(nil, c.Path, c.Value)
		}
		select {
		case queue <- line:
		default:
			if ended.CompareAndSwap(false, true) {
				log.Error("the guest does not read its QubesDB: the queue of changes is full; "+
					"ending the push, the guest's QubesDB is no longer kept up to date", "queued", limit)
				close(overflowed)
				// unblock a change's write; the snapshot, the guest's
				// state at start, is written whole first whatever happens
				if snapshotSent.Load() {
					_ = conn.SetWriteDeadline(time.Now())
				}
			}
		}
	})
	first := []byte("QUBESDB 1\n")
	for _, e := range snapshot {
		first = appendWrite(first, e.Path, e.Value)
	}
	first = append(first, "S\n"...)

	done := make(chan struct{})
	stopping := make(chan struct{})
	go func() {
		defer close(done)
		defer conn.Close() // the guest reads EOF after what was sent
		if _, err := conn.Write(first); err != nil {
			logPushEnd(log, stopping, &ended, err)
			return
		}
		snapshotSent.Store(true)
		select {
		case <-overflowed:
			// the overflow came during the snapshot's write and left the
			// deadline to this side: changes written from here fail at once
			_ = conn.SetWriteDeadline(time.Now())
		default:
		}
		for {
			select {
			case <-stopping:
				return
			case <-overflowed:
				return
			case line := <-queue:
				if _, err := conn.Write(line); err != nil {
					logPushEnd(log, stopping, &ended, err)
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			ended.Store(true)
			unmirror()
			close(stopping)
			conn.Close()
			<-done
		})
	}
}

// logPushEnd logs why the writer ended, unless the run's end or an
// overflow (logged already) ended it.
func logPushEnd(log hclog.Logger, stopping chan struct{}, ended *atomic.Bool, err error) {
	select {
	case <-stopping:
		return
	default:
	}
	if ended.Swap(true) {
		return
	}
	log.Warn("pushing QubesDB to the guest failed; its QubesDB is no longer kept up to date", "error", err)
}

// appendWrite appends the line "W <path> <escaped value>\n".
func appendWrite(b []byte, path string, value []byte) []byte {
	b = append(b, "W "...)
	b = append(b, path...)
	b = append(b, ' ')
	b = appendEscaped(b, value)
	return append(b, '\n')
}

// appendRemove appends the line "R <path>\n".
func appendRemove(b []byte, path string) []byte {
	b = append(b, "R "...)
	b = append(b, path...)
	return append(b, '\n')
}

// appendEscaped escapes v as printf's %b reads it: "\" as "\\", control
// bytes and DEL as "\0ooo".
func appendEscaped(b, v []byte) []byte {
	for _, c := range v {
		switch {
		case c == '\\':
			b = append(b, `\\`...)
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\', '0', '0'+c>>6, '0'+(c>>3)&7, '0'+c&7)
		default:
			b = append(b, c)
		}
	}
	return b
}
