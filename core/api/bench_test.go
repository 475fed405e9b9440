package api

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
)

// call sends one request over a unix socket and reads the reply, as every
// Admin API client does.
func call(b *testing.B, sock string, req []byte) []byte {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(req); err != nil {
		b.Fatal(err)
	}
	_ = conn.(*net.UnixConn).CloseWrite()
	reply, err := io.ReadAll(conn)
	if err != nil {
		b.Fatal(err)
	}
	return reply
}

// BenchmarkSocketPropertyGet measures admin.vm.property.Get over a unix
// socket; BenchmarkSocketFloor the same client against a server that only
// answers a fixed reply. Their ratio is the server's own cost.
func BenchmarkSocketPropertyGet(b *testing.B) {
	s, _ := replayServer(b)
	sock := filepath.Join(b.TempDir(), "qubesd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	req := []byte("admin.vm.property.Get+memory dom0 name vm0001\x00")
	if r := call(b, sock, req); string(r) != "0\x00default=True type=int 400" {
		b.Fatalf("reply %q", r)
	}
	for b.Loop() {
		call(b, sock, req)
	}
}

func BenchmarkSocketFloor(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "floor.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(io.Discard, conn)
				_, _ = conn.Write([]byte("0\x00default=True type=int 400"))
			}()
		}
	}()
	req := []byte("admin.vm.property.Get+memory dom0 name vm0001\x00")
	for b.Loop() {
		call(b, sock, req)
	}
}
