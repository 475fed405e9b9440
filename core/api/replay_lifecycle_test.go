package api

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/qubesgo/qubesd/core/lifecycle"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/storage"
	"github.com/qubesgo/qubesd/core/vmm"
)

// The transcripts were recorded against libvirt's test driver on the host
// file shared/fixtures/admin-api/libvirt-test-node.xml (a 16 GiB, 2-core
// host with a running dom0 domain), with no qube ever started
// (shared/fixtures/README.md). The replay server gets a lifecycle on the
// same host file, so the lifecycle methods run the daemon's code against
// the same libvirt the reference saw.

// replayLifecycle connects to the reference's test-driver host and returns
// a lifecycle manager for app, fed libvirt's events. The qubes libvirt
// reports running are adopted first: the recording had none (dom0 is not
// a VM of ours), and the replay checks it stayed so.
func replayLifecycle(t testing.TB, app *qubes.App, st *storage.Manager, commit func(context.Context, uint64) error) *lifecycle.Manager {
	t.Helper()
	uri := "test://" + fixture(t, "admin-api/libvirt-test-node.xml")
	flavour, err := vmm.FlavourForURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	r, err := vmm.NewRenderer(flavour, "")
	if err != nil {
		t.Fatal(err)
	}
	var m atomic.Pointer[lifecycle.Manager]
	conn, err := vmm.Open(vmm.Options{URI: uri, OnEvent: func(ev vmm.Event) {
		if lm := m.Load(); lm != nil {
			lm.HandleEvent(ev)
		}
	}})
	if err != nil {
		t.Fatalf("connecting to libvirt's test driver on the reference's host file: %v", err)
	}
	lm := lifecycle.New(lifecycle.Options{App: app, Storage: st, Conn: conn, Renderer: r, Commit: commit})
	m.Store(lm)
	t.Cleanup(func() {
		lm.Close()
		_ = conn.Close()
	})
	adopted, err := lm.Adopt()
	if err != nil {
		t.Fatalf("adopting the running qubes of the reference's host: %v", err)
	}
	if len(adopted) != 0 {
		t.Fatalf("the reference's host file runs qubes %v: the transcripts were recorded with none running but dom0", adopted)
	}
	return lm
}
