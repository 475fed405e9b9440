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

// BenchmarkGetAll1000 measures admin.vm.property.GetAll on a qube of a
// 1000-qube model, without the socket: the server's own cost of the call
// qvm-ls makes once per qube.
func BenchmarkGetAll1000(b *testing.B) {
	app, _ := newModel(b, 1000)
	s := New(Options{App: app})
	req := []byte("admin.vm.property.GetAll+ dom0 name vm0500\x00")
	b.ReportAllocs()
	for b.Loop() {
		if r := s.Call(context.Background(), req); r[0] != '0' {
			b.Fatalf("%q", r)
		}
	}
}

// BenchmarkGetAllBulk1000 measures admin.vm.property.GetAllBulk on a
// 1000-qube model, without the socket.
func BenchmarkGetAllBulk1000(b *testing.B) {
	app, _ := newModel(b, 1000)
	s := New(Options{App: app})
	req := []byte("admin.vm.property.GetAllBulk+ dom0 name dom0\x00")
	b.ReportAllocs()
	for b.Loop() {
		if r := s.Call(context.Background(), req); r[0] != '0' {
			b.Fatalf("%q", r[:100])
		}
	}
}
