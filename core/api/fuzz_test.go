package api

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/qubes/qubestest"
)

// FuzzDispatch feeds arbitrary requests to Server.Call and checks that
// every one gets a well-formed reply and that a refused call changes
// nothing.
//
// `go test` runs only the seeds: the requests of the reference's read and
// mutate transcripts and hostile framing. To fuzz for a long time:
//
//	go test -run='^$' -fuzz=FuzzDispatch -fuzztime=10m ./core/api/
//
// (what `make fuzz` should run beside FuzzDecode of core/store).
//
// Each fuzz worker keeps one server and rebuilds it every fuzzRebuild
// inputs, so that the model stays close to the transcripts' starting store
// (inputs may create and remove qubes, labels, features...).
func FuzzDispatch(f *testing.F) {
	seeds := 0
	for _, name := range []string{"admin-api/public-n10-read.jsonl", "admin-api/public-n10-mutate.jsonl"} {
		for i, l := range readLines(f, name) {
			// every other request of the read transcript (a few hundred),
			// all of the mutate transcript
			if strings.HasSuffix(name, "read.jsonl") && i%2 == 1 {
				continue
			}
			f.Add(l.Req.wire(refBase))
			seeds++
		}
	}
	for _, raw := range hostileInputs() {
		f.Add(raw)
		seeds++
	}
	for _, raw := range []string{
		"admin.vm.List+ dom0 keyword adminvm\x00",
		"admin.vm.List+ dom0 keyword other\x00",
		"admin.vm.List dom0 name dom0\x00",
		"admin.vm.List+ dom0 name dom0",
		"admin.vm.List+\x00 dom0 name dom0\x00",
		"admin.vm.List+ dom0\x00 name dom0\x00",
		"admin.vm.property.Get+netvm dom0 name uuid:00000000-0000-0000-0000-000000000000\x00",
		"admin.vm.property.Set+netvm dom0 name work\x00",
		"admin.vm.property.Set+netvm dom0 name work\x00sys-firewall",
		"admin.vm.property.Reset+netvm dom0 name work\x00",
		"admin.vm.feature.Set+x dom0 name work\x00\x00",
		"admin.vm.tag.Set+created-by-work work name work\x00",
		"admin.label.Create+mylabel dom0 name dom0\x000x123456",
		"admin.label.Remove+mylabel dom0 name dom0\x00",
		"admin.vm.Create.AppVM+ dom0 name dom0\x00name=new label=red",
		"admin.vm.Remove+ dom0 name new\x00",
		"admin.Events+ dom0 name dom0\x00",
	} {
		f.Add([]byte(raw))
		seeds++
	}
	if seeds < 300 {
		f.Fatalf("only %d seeds", seeds)
	}

	fz := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := fz.server(t)
		before := snapshotXML(s.app)
		reply := s.Call(context.Background(), raw)
		if err := checkReply(reply); err != nil {
			t.Fatalf("request %q: %v", raw, err)
		}
		if bytes.Contains(reply, []byte("\x00internal error in ")) {
			t.Fatalf("request %q: a handler panicked: %q", raw, reply)
		}
		if reply[0] == '2' {
			if after := snapshotXML(s.app); !bytes.Equal(before, after) {
				fz.stale = true // the next input gets a fresh model
				t.Fatalf("request %q was refused (%q) but changed the model:\n%s", raw, reply, lineDiff(before, after))
			}
		}
	})
}

// fuzzRebuild is how many inputs a fuzz worker's server answers before it
// is rebuilt from the starting store.
const fuzzRebuild = 500

type fuzzServer struct {
	dir   string
	doc   []byte // the starting store, paths mapped to dir
	s     *Server
	calls int
	stale bool
}

func newFuzzServer(f *testing.F) *fuzzServer {
	dir := qubestest.DataDir(f)
	raw, err := os.ReadFile(fixture(f, "admin-api/public-n10-qubes.xml"))
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzServer{dir: dir, doc: qubestest.Mapped(raw, dir)}
}

// server returns the worker's server, rebuilding it when due. Changes stay
// in memory (no Committer): the fuzzer checks dispatch, not the disk.
func (fz *fuzzServer) server(t *testing.T) *Server {
	if fz.s == nil || fz.stale || fz.calls >= fuzzRebuild {
		app := qubestest.Load(t, fz.doc, fz.dir)
		fz.s, fz.calls, fz.stale = New(Options{App: app}), 0, false
	}
	fz.calls++
	return fz.s
}
