package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/qdb"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/core/vmm"
	"github.com/qubesgo/qubesd/sdk/extension"
)

// fixtureApp loads the reference's qubes-n10.xml into a model.
func fixtureApp(t *testing.T) *qubes.App {
	a, _ := qubestest.FixtureModel(t, "qubes-n10.xml")
	return a
}

func TestHostServiceOutsideDispatch(t *testing.T) {
	a := fixtureApp(t)
	committed := uint64(0)
	h := &HostService{App: a, Commit: func(_ context.Context, v uint64) error { committed = v; return nil }}
	ctx := context.Background()

	p, err := h.GetProperty(ctx, 0, "vm0001", "netvm")
	if err != nil || p != (extension.Property{Value: "sys-firewall", IsDefault: true, Type: "vm"}) {
		t.Fatalf("GetProperty: %+v %v", p, err)
	}
	if p, err := h.GetProperty(ctx, 0, "", "default_template"); err != nil || p.Value != "debian-12-xfce" {
		t.Fatalf("global GetProperty: %+v %v", p, err)
	}
	if err := h.SetProperty(ctx, 0, "vm0001", "memory", "600"); err != nil || committed == 0 {
		t.Fatalf("SetProperty: %v (committed version %d)", err, committed)
	}
	if err := h.SetFeature(ctx, 0, "vm0001", "hello", "1"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := h.GetFeature(ctx, 0, "vm0001", "hello"); err != nil || !ok || v != "1" {
		t.Fatalf("GetFeature: %q %v %v", v, ok, err)
	}
	if err := h.AddTag(ctx, 0, "vm0001", "seen"); err != nil {
		t.Fatal(err)
	}
	if tags, _ := h.ListTags(ctx, 0, "vm0001"); !strings.Contains(strings.Join(tags, " "), "seen") {
		t.Errorf("ListTags: %v", tags)
	}
	if qs, err := h.ListQubes(ctx, 0); err != nil || len(qs) != 14 || qs[0].Name != "dom0" {
		t.Errorf("ListQubes: %d qubes, %v", len(qs), err)
	}

	// errors keep their Qubes exception class
	err = h.SetProperty(ctx, 0, "vm0001", "memory", "-1")
	if typ, msg := extension.ExceptionOf(err); typ != "QubesPropertyValueError" || msg != "memory must be positive" {
		t.Errorf("a refused value: %q %q", typ, msg)
	}
	if _, err := h.GetProperty(ctx, 0, "nosuch", "label"); !errors.Is(err, extension.ErrNotFound) {
		t.Errorf("unknown qube: %v", err)
	}
	if err := h.QdbWrite(ctx, 0, "vm0001", "/x", nil); !errors.Is(err, extension.ErrUnimplemented) {
		t.Errorf("QdbWrite: %v", err)
	}
}

// TestHostServiceInsideDispatch: an extension handling an event fired under
// the write lock calls back with the dispatch id — from another goroutine,
// as a plugin's call arrives — and its change is made inside the lock.
func TestHostServiceInsideDispatch(t *testing.T) {
	a := fixtureApp(t)
	h := &HostService{App: a}
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(func() error {
			id, end := a.BeginDispatch(true)
			defer end()
			res := make(chan error)
			go func() { res <- h.AddTag(context.Background(), id, "vm0002", "from-extension") }()
			return <-res
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: the callback waited for its dispatcher's lock")
	}
	if tags, _ := h.ListTags(context.Background(), 0, "vm0002"); !strings.Contains(strings.Join(tags, " "), "from-extension") {
		t.Errorf("the tag made inside the dispatch is missing: %v", tags)
	}
}

// qdbHost is a HostService over the fixture with dom0 and vm0001 running
// (their QubesDB open) and every other qube halted.
func qdbHost(t *testing.T) (*HostService, *qdb.Registry) {
	a := fixtureApp(t)
	reg := &qdb.Registry{}
	reg.Open("dom0")
	reg.Open("vm0001")
	return &HostService{App: a, QDB: reg}, reg
}

// checkHostErr checks an error from a host call: nil when wantType is "",
// else of Qubes exception class wantType with a message containing
// wantMsg (an unimplemented call: wantType "unimplemented").
func checkHostErr(t *testing.T, err error, wantType, wantMsg string) {
	t.Helper()
	switch wantType {
	case "":
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	case "unimplemented":
		if !errors.Is(err, extension.ErrUnimplemented) {
			t.Fatalf("error %v; want ErrUnimplemented", err)
		}
	case "not found":
		if !errors.Is(err, extension.ErrNotFound) {
			t.Fatalf("error %v; want ErrNotFound", err)
		}
	default:
		if err == nil {
			t.Fatalf("no error; want %s", wantType)
		}
		if typ, _ := extension.ExceptionOf(err); typ != wantType {
			t.Errorf("exception class %q (%v); want %q", typ, err, wantType)
		}
	}
	if !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("message %q; want it to contain %q", err.Error(), wantMsg)
	}
}

func TestHostServiceQdb(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		call     func(h *HostService) error
		wantType string
		wantMsg  string
		// what the qube's DB holds afterwards ("qube:path" → value; "" = absent)
		want map[string]string
	}{
		{"write to a running qube", func(h *HostService) error {
			return h.QdbWrite(ctx, 0, "vm0001", "/qubes-service/clocksync", []byte("1"))
		}, "", "", map[string]string{"vm0001:/qubes-service/clocksync": "1", "dom0:/qubes-service/clocksync": ""}},
		{"write to dom0", func(h *HostService) error {
			return h.QdbWrite(ctx, 0, "dom0", "/qubes-keyboard", []byte("layout=us"))
		}, "", "", map[string]string{"dom0:/qubes-keyboard": "layout=us"}},
		{"an empty value", func(h *HostService) error {
			return h.QdbWrite(ctx, 0, "vm0001", "/qubes-block-devices", nil)
		}, "", "", nil},
		{"write to a halted qube", func(h *HostService) error {
			return h.QdbWrite(ctx, 0, "vm0002", "/qubes-service/clocksync", []byte("1"))
		}, "QubesVMNotRunningError", "qube vm0002 is not running: its QubesDB exists only while it runs", nil},
		{"write to an unknown qube", func(h *HostService) error {
			return h.QdbWrite(ctx, 0, "nosuch", "/x", nil)
		}, "not found", "nosuch", nil},
		{"a relative path", func(h *HostService) error {
			return h.QdbWrite(ctx, 0, "vm0001", "qubes-service/x", nil)
		}, "QubesValueError", `QubesDB path "qubes-service/x" is not absolute`, nil},
		{"a path with a space", func(h *HostService) error {
			return h.QdbWrite(ctx, 0, "vm0001", "/qubes-service/my service", nil)
		}, "QubesValueError", "a path is made of a-z A-Z 0-9 and - _ . : @ /", nil},
		{"a directory", func(h *HostService) error {
			return h.QdbWrite(ctx, 0, "vm0001", "/qubes-service/", nil)
		}, "QubesValueError", `ends with "/"`, nil},
		{"a path too long", func(h *HostService) error {
			return h.QdbWrite(ctx, 0, "vm0001", "/"+strings.Repeat("s", 63), nil)
		}, "QubesValueError", "64 bytes long: at most 63 are allowed", nil},
		{"a value too long", func(h *HostService) error {
			return h.QdbWrite(ctx, 0, "vm0001", "/x", make([]byte, 4096))
		}, "QubesValueError", "4096 bytes long: at most 3071 are allowed", nil},
		{"remove an entry", func(h *HostService) error {
			return h.QdbRemove(ctx, 0, "vm0001", "/qubes-firewall/10.137.0.2")
		}, "", "", map[string]string{"vm0001:/qubes-firewall/10.137.0.2": "", "vm0001:/qubes-firewall/10.137.0.2/policy": "drop"}},
		{"remove a subtree", func(h *HostService) error {
			return h.QdbRemove(ctx, 0, "vm0001", "/qubes-firewall/10.137.0.2/")
		}, "", "", map[string]string{"vm0001:/qubes-firewall/10.137.0.2": "done", "vm0001:/qubes-firewall/10.137.0.2/policy": ""}},
		{"remove what is not there", func(h *HostService) error {
			return h.QdbRemove(ctx, 0, "vm0001", "/nosuch")
		}, "", "", nil},
		{"remove from a halted qube", func(h *HostService) error {
			return h.QdbRemove(ctx, 0, "sys-net", "/x")
		}, "QubesVMNotRunningError", "qube sys-net is not running", nil},
		{"remove a bad path", func(h *HostService) error {
			return h.QdbRemove(ctx, 0, "vm0001", "/a//b")
		}, "QubesValueError", "empty component", nil},
		{"a stale dispatch id", func(h *HostService) error {
			return h.QdbWrite(ctx, 1<<40, "vm0001", "/x", nil)
		}, "QubesException", "dispatch", map[string]string{"vm0001:/x": ""}},
		{"no registry", func(h *HostService) error {
			h.QDB = nil
			return h.QdbWrite(ctx, 0, "vm0001", "/x", nil)
		}, "unimplemented", "keeps no QubesDB", nil},
		{"no registry, unknown qube", func(h *HostService) error {
			h.QDB = nil
			return h.QdbRemove(ctx, 0, "nosuch", "/x")
		}, "not found", "nosuch", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, reg := qdbHost(t)
			db, _ := reg.Get("vm0001")
			if err := db.Write("/qubes-firewall/10.137.0.2", []byte("done")); err != nil {
				t.Fatal(err)
			}
			if err := db.Write("/qubes-firewall/10.137.0.2/policy", []byte("drop")); err != nil {
				t.Fatal(err)
			}
			checkHostErr(t, tt.call(h), tt.wantType, tt.wantMsg)
			for k, want := range tt.want {
				qube, path, _ := strings.Cut(k, ":")
				db, ok := reg.Get(qube)
				if !ok {
					t.Fatalf("%s has no DB", qube)
				}
				got, ok := db.Read(path)
				if want == "" && ok {
					t.Errorf("%s has %s = %q; want none", qube, path, got)
				} else if want != "" && string(got) != want {
					t.Errorf("%s has %s = %q, %v; want %q", qube, path, got, ok, want)
				}
			}
			if _, ok := reg.Get("vm0002"); ok {
				t.Error("a call opened the QubesDB of a halted qube")
			}
		})
	}
}

// TestHostServiceQdbInDispatch: an extension handling domain-qdb-create
// (fired with the model locked) writes with the dispatch id, from another
// goroutine as a plugin's call arrives, without deadlocking; once the
// qube stops, its DB is gone.
func TestHostServiceQdbInDispatch(t *testing.T) {
	h, reg := qdbHost(t)
	// lock runs fn under the model's read or write lock, as the core fires
	// events of either kind
	tests := []struct {
		name string
		lock func(fn func() error) error
		path string
	}{
		{"read dispatch", h.App.Read, "/qubes-service/r"},
		{"write dispatch", func(fn func() error) error { _, err := h.App.Write(fn); return err }, "/qubes-service/w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				done <- tt.lock(func() error {
					id, end := h.App.BeginDispatch(tt.name == "write dispatch")
					defer end()
					res := make(chan error)
					go func() { res <- h.QdbWrite(context.Background(), id, "vm0001", tt.path, []byte("1")) }()
					return <-res
				})
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("deadlock: the callback waited for its dispatcher's lock")
			}
			db, _ := reg.Get("vm0001")
			if v, ok := db.Read(tt.path); !ok || string(v) != "1" {
				t.Errorf("%s = %q, %v after the write inside the dispatch", tt.path, v, ok)
			}
		})
	}

	reg.Close("vm0001") // the qube stopped
	err := h.QdbWrite(context.Background(), 0, "vm0001", "/x", nil)
	checkHostErr(t, err, "QubesVMNotRunningError", "qube vm0001 is not running")
}

func TestHostServiceDevices(t *testing.T) {
	ctx := context.Background()
	a := fixtureApp(t)
	if _, err := a.Write(func() error {
		l, err := a.Label("orange")
		if err != nil {
			return err
		}
		_, err = a.Create(qubes.RemoteVMClass, qubes.CreateOptions{Name: "far", Label: l})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	running := map[string]string{"dom0": "Running", "far": "Running", "vm0001": "Running", "vm0003": "Paused", "vm0004": "Halted"}
	h := &HostService{App: a, PowerState: func(q *qubes.Qube) string {
		if s, ok := running[q.Name()]; ok {
			return s
		}
		return "Halted"
	}}
	const xml = `<disk type="block"/>`
	ops := []struct {
		name string
		call func(qube string) error
		verb string
	}{
		{"attach", func(q string) error { return h.AttachDevice(ctx, 0, q, xml) }, "attached to"},
		{"detach", func(q string) error { return h.DetachDevice(ctx, 0, q, xml) }, "detached from"},
	}
	tests := []struct {
		qube     string
		wantType string
		wantMsg  string // %s is the verb
	}{
		{"dom0", "QubesValueError", "devices cannot be %s dom0 through libvirt"},
		{"far", "QubesValueError", "devices cannot be %s far through this host's libvirt"},
		{"vm0002", "QubesVMNotRunningError", "qube vm0002 is not running: devices are %s running qubes only"},
		{"vm0004", "QubesVMNotRunningError", "qube vm0004 is not running"},
		{"vm0001", "unimplemented", "devices cannot be %s vm0001: this qubesd has no libvirt connection"},
		{"vm0003", "unimplemented", "devices cannot be %s vm0003: this qubesd has no libvirt"}, // paused is running for libvirt
		{"nosuch", "not found", "nosuch"},
	}
	for _, op := range ops {
		for _, tt := range tests {
			t.Run(op.name+" "+tt.qube, func(t *testing.T) {
				msg := tt.wantMsg
				if strings.Contains(msg, "%s") {
					msg = fmt.Sprintf(msg, op.verb)
				}
				checkHostErr(t, op.call(tt.qube), tt.wantType, msg)
			})
		}
	}
	// with libvirt: the call reaches the domain; libvirt's refusals say why
	dev := &fakeDevices{}
	h.Devices = dev
	if err := h.AttachDevice(ctx, 0, "vm0001", xml); err != nil || dev.calls != "attach vm0001 "+xml+";" {
		t.Errorf("attach to a running qube: %v; libvirt saw %q", err, dev.calls)
	}
	if err := h.DetachDevice(ctx, 0, "vm0003", xml); err != nil || !strings.HasSuffix(dev.calls, "detach vm0003 "+xml+";") {
		t.Errorf("detach from a paused qube: %v; libvirt saw %q", err, dev.calls)
	}
	checkHostErr(t, h.AttachDevice(ctx, 0, "vm0001", "  "), "QubesValueError", "no device XML to be attached to vm0001")
	dev.err = vmm.ErrUnsupported
	checkHostErr(t, h.AttachDevice(ctx, 0, "vm0001", xml), "unimplemented", "devices cannot be attached to vm0001")
	dev.err = errors.New("device busy")
	checkHostErr(t, h.DetachDevice(ctx, 0, "vm0001", xml), "QubesException", "device could not be detached from vm0001: device busy")

	// without a PowerState every qube but dom0 is halted
	h.PowerState = nil
	checkHostErr(t, h.AttachDevice(ctx, 0, "vm0001", xml), "QubesVMNotRunningError", "qube vm0001 is not running")
}

// fakeDevices records the device calls that reach "libvirt".
type fakeDevices struct {
	calls string
	err   error
}

func (f *fakeDevices) AttachDevice(domain, xml string) error {
	f.calls += "attach " + domain + " " + xml + ";"
	return f.err
}

func (f *fakeDevices) DetachDevice(domain, xml string) error {
	f.calls += "detach " + domain + " " + xml + ";"
	return f.err
}
