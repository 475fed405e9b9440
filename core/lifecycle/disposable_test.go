package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/daemon/daemontest"
	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/vmm"
	"github.com/qubesgo/qubesd/sdk/admin"
)

// dispEnv is env with the path of the daemon's qubes.xml.
type dispEnv struct {
	*env
	store string
}

func startDispEnv(t *testing.T) *dispEnv {
	t.Helper()
	d := daemontest.Start(t)
	return &dispEnv{env: &env{d: d.Daemon, c: admin.New(d.Config.Daemon.SocketPath()), mem: d.Pool}, store: d.Config.Daemon.StorePath()}
}

// dispTemplate makes a disposable template whose disposables can start on
// the test driver: an AppVM (template_for_dispvms, no netvm) on a new
// TemplateVM without a kernel, so that every volume a disposable snapshots
// exists in the in-memory pool. The names are prefix-tpl and prefix-dvm.
func (e *env) dispTemplate(t *testing.T, prefix string) string {
	t.Helper()
	tpl, dvm := prefix+"-tpl", prefix+"-dvm"
	e.call(t, "admin.vm.Create.TemplateVM", "dom0", "", "name="+tpl+" label=black")
	e.call(t, "admin.vm.property.Set", tpl, "kernel", "")
	e.call(t, "admin.vm.Create.AppVM", "dom0", tpl, "name="+dvm+" label=red")
	e.call(t, "admin.vm.property.Set", dvm, "template_for_dispvms", "True")
	e.call(t, "admin.vm.property.Set", dvm, "netvm", "")
	return dvm
}

// createDisposable calls admin.vm.CreateDisposable and makes sure the
// disposable's domain is gone when the test ends, whatever happened.
func (e *env) createDisposable(t *testing.T, src, dest, payload string) string {
	t.Helper()
	out, err := e.c.CallFrom(context.Background(), src, "admin.vm.CreateDisposable", dest, "", []byte(payload))
	if err != nil {
		t.Fatalf("admin.vm.CreateDisposable from %s to %s: %v", src, dest, err)
	}
	name := string(out)
	if rest, ok := strings.CutPrefix(name, "uuid:"); ok {
		_ = e.d.App().Read(func() error {
			if q, err := e.d.App().QubeByUUID(rest); err == nil {
				name = q.Name()
			}
			return nil
		})
	}
	t.Cleanup(func() {
		if conn, err := vmm.Open(vmm.Options{}); err == nil {
			_ = conn.Destroy(name)
			_ = conn.Undefine(name)
			conn.Close()
		}
	})
	return string(out)
}

// recordLife records, in firing order, the events of the first disposable
// that gets any: its own domain-* events and the system's domain-add,
// domain-pre-delete and domain-delete about it.
func (e *env) recordLife(t *testing.T) *recorder {
	r := &recorder{}
	var name string
	unsub := e.d.App().Bus().Subscribe("domain-*", events.Observer, func(ev *events.Event) error {
		q, _ := ev.Subject.(*qubes.Qube)
		if q == nil {
			v, _ := ev.Arg("vm")
			q, _ = v.(*qubes.Qube)
		}
		if q == nil || !q.IsDisposable() {
			return nil
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if name == "" {
			name = q.Name()
		}
		if q.Name() == name {
			r.evs = append(r.evs, ev.Name)
		}
		return nil
	})
	t.Cleanup(unsub)
	return r
}

// volumeVIDs are the vids of q's volumes in the file-reflink pool.
func (e *env) volumeVIDs(t *testing.T, name string) []string {
	t.Helper()
	var vids []string
	err := e.d.App().Read(func() error {
		q, err := e.d.App().Qube(name)
		if err != nil {
			return err
		}
		vols, err := e.d.Storage().Volumes(q)
		for _, v := range vols {
			if v.Pool.Name == "varlibqubes" {
				vids = append(vids, v.Spec.VID)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return vids
}

// exists reports whether the model has a qube called name.
func (e *env) exists(name string) bool {
	return e.d.App().Read(func() error { _, err := e.d.App().Qube(name); return err }) == nil
}

// saved reports whether the qubes.xml on disk has a qube called name.
func (e *dispEnv) saved(t *testing.T, name string) bool {
	t.Helper()
	b, err := os.ReadFile(e.store)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), `<property name="name">`+name+`</property>`)
}

var dispNameRe = regexp.MustCompile(`\Adisp[0-9]{1,4}\z`)

// TestDisposableLife: a disposable is created with its volumes, starts,
// and once it stops is removed — volumes, record, qubes.xml, libvirt
// definition — with the events in the reference's order.
func TestDisposableLife(t *testing.T) {
	e := startDispEnv(t)
	dvm := e.dispTemplate(t, "life")
	cleanup := []string{"domain-stopped", "domain-shutdown", "domain-pre-delete", "domain-delete"}
	tests := []struct {
		name   string
		stop   func(t *testing.T, disp string)
		events []string // from the stop on
	}{
		{"killed", func(t *testing.T, disp string) { e.call(t, "admin.vm.Kill", disp, "", "") }, cleanup},
		{"shut down", func(t *testing.T, disp string) { e.call(t, "admin.vm.Shutdown", disp, "wait", "") },
			append([]string{"domain-pre-shutdown"}, cleanup...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var perm []events.KV
			unsub := e.d.App().Bus().Subscribe("admin-permission:admin.vm.CreateDisposable", events.Observer, func(ev *events.Event) error {
				mu.Lock()
				perm = ev.Kwargs
				mu.Unlock()
				return nil
			})
			defer unsub()
			r := e.recordLife(t)
			disp := e.createDisposable(t, "dom0", dvm, "")
			if !dispNameRe.MatchString(disp) {
				t.Fatalf("CreateDisposable replied %q, want disp<dispid>", disp)
			}
			if got := e.call(t, "admin.vm.property.Get", disp, "dispid", ""); "disp"+got[strings.LastIndexByte(got, ' ')+1:] != disp {
				t.Errorf("dispid %q does not make the name %s", got, disp)
			}
			wantPerm := fmt.Sprint([]events.KV{{Key: "dest", Value: dvm}, {Key: "arg", Value: ""}, {Key: "dispvm_template", Value: dvm}})
			mu.Lock()
			got := fmt.Sprint(perm)
			mu.Unlock()
			if got != wantPerm {
				t.Errorf("admin-permission kwargs = %s, want %s", got, wantPerm)
			}
			for prop, want := range map[string]string{
				"auto_cleanup": "default=False type=bool True",
				"template":     "default=False type=vm " + dvm,
				"label":        "default=False type=label red",
			} {
				if got := e.call(t, "admin.vm.property.Get", disp, prop, ""); got != want {
					t.Errorf("%s = %q, want %q", prop, got, want)
				}
			}
			tags := e.call(t, "admin.vm.tag.List", disp, "", "")
			for _, tag := range []string{"created-by-dom0", "disp-created-by-dom0"} {
				if !slices.Contains(strings.Fields(tags), tag) {
					t.Errorf("tag %s missing: %q", tag, tags)
				}
			}
			if !e.saved(t, disp) {
				t.Error("the new disposable is not in qubes.xml")
			}
			vids := e.volumeVIDs(t, disp)
			if len(vids) != 3 {
				t.Errorf("volumes in the pool: %v, want root, private, volatile", vids)
			}
			// created-by-dom0 came with the template's tags (dom0 made the
			// template): adding it again fires nothing, as in the reference
			want := []string{"domain-add", "domain-create-on-disk", "domain-tag-add:disp-created-by-dom0"}
			if got := r.take(); !slices.Equal(got, want) {
				t.Errorf("creation events:\n got %v\nwant %v", got, want)
			}

			e.call(t, "admin.vm.Start", disp, "", "")
			if s := e.listState(t, disp); s != "Running" {
				t.Errorf("state after start = %s", s)
			}
			if got := r.take(); !slices.Equal(got, startEvents) {
				t.Errorf("start events:\n got %v\nwant %v", got, startEvents)
			}

			tt.stop(t, disp)
			if got := r.waitFor(t, "domain-delete"); !slices.Equal(got, tt.events) {
				t.Errorf("stop events:\n got %v\nwant %v", got, tt.events)
			}
			if err := e.callErr("admin.vm.List", disp, ""); err != "QubesVMNotFoundError: No such domain: '"+disp+"'" {
				t.Errorf("admin.vm.List after the stop: %s", err)
			}
			for _, vid := range vids {
				if e.mem.Has("varlibqubes", vid) {
					t.Errorf("volume %s is left in the pool", vid)
				}
			}
			if _, err := vmmConn(t).Lookup(disp); !errors.Is(err, vmm.ErrNoDomain) {
				t.Errorf("the disposable's domain is still defined: %v", err)
			}
			// the removal was committed before the event's reply came back;
			// qubes.xml follows the commit
			waitUntil(t, "qubes.xml without "+disp, func() bool { return !e.saved(t, disp) })
		})
	}
}

// waitUntil polls cond; it fails the test when cond stays false (a hang
// guard, not a timing assertion).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("still waiting for %s", what)
}

// TestCreateDisposableRefusals: the argument, the payload and the template
// are checked with the reference's errors, and a refused call creates
// nothing.
func TestCreateDisposableRefusals(t *testing.T) {
	e := startDispEnv(t)
	dvm := e.dispTemplate(t, "refuse")
	notTemplate := "QubesException: Refusing to create disposable out of app qube which has template_for_dispvms=False"
	tests := []struct {
		name, src, dest, arg, payload string
		want                          string
	}{
		{"unknown argument", "dom0", dvm, "now", "", `PermissionDenied: Argument not in "'', 'preload'"`},
		{"unknown payload", "dom0", dvm, "", "name", "ProtocolError: Invalid payload, expected empty string or 'uuid'"},
		{"argument checked before payload", "dom0", dvm, "now", "name", `PermissionDenied: Argument not in "'', 'preload'"`},
		{"preload", "dom0", dvm, "preload", "", "QubesException: Preloading disposables is not supported yet"},
		{"template without template_for_dispvms", "dom0", "vm0002", "", "", notTemplate},
		{"dom0 without default_dispvm", "dom0", "dom0", "", "", notTemplate},
		{"caller without default_dispvm", "vm0003", "dom0", "", "", notTemplate},
		{"a uuid payload does not skip the template check", "dom0", "sys-net", "", "uuid", notTemplate},
	}
	before := e.call(t, "admin.vm.List", "dom0", "", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.c.CallFrom(context.Background(), tt.src, "admin.vm.CreateDisposable", tt.dest, tt.arg, []byte(tt.payload))
			var ae *admin.Error
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
			if got := ae.Type + ": " + ae.Message; !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if after := e.call(t, "admin.vm.List", "dom0", "", ""); after != before {
		t.Errorf("refused calls changed the qubes:\nbefore %s\nafter  %s", before, after)
	}
}

// TestCreateDisposableTemplates: which template a disposable comes from,
// what it is tagged with, and the uuid reply.
func TestCreateDisposableTemplates(t *testing.T) {
	e := startDispEnv(t)
	dvm := e.dispTemplate(t, "which")
	e.call(t, "admin.property.Set", "dom0", "default_dispvm", dvm)
	e.call(t, "admin.vm.property.Set", "vm0004", "default_dispvm", dvm)
	tests := []struct {
		name, src, dest, payload string
		uuidReply                bool
	}{
		{"dest is the template", "dom0", dvm, "", false},
		{"dom0's default_dispvm", "dom0", "dom0", "", false},
		{"the caller's default_dispvm", "vm0004", "dom0", "", false},
		{"uuid reply", "dom0", dvm, "uuid", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := e.createDisposable(t, tt.src, tt.dest, tt.payload)
			var q *qubes.Qube
			_ = e.d.App().Read(func() error {
				if rest, ok := strings.CutPrefix(out, "uuid:"); ok {
					q, _ = e.d.App().QubeByUUID(rest)
				} else {
					q, _ = e.d.App().Qube(out)
				}
				return nil
			})
			if q == nil {
				t.Fatalf("reply %q names no qube", out)
			}
			if got := strings.HasPrefix(out, "uuid:"); got != tt.uuidReply || tt.uuidReply && out != "uuid:"+q.UUID() {
				t.Errorf("reply %q for payload %q (qube %s, uuid %s)", out, tt.payload, q.Name(), q.UUID())
			}
			_ = e.d.App().Read(func() error {
				if tpl := q.Template(); tpl == nil || tpl.Name() != dvm {
					t.Errorf("template = %v, want %s", tpl, dvm)
				}
				for _, tag := range []string{"created-by-" + tt.src, "disp-created-by-" + tt.src} {
					if !q.Tags.Has(tag) {
						t.Errorf("tag %s missing: %v", tag, q.Tags.All())
					}
				}
				return nil
			})
			e.call(t, "admin.vm.Remove", q.Name(), "", "")
		})
	}
}

// TestDisposableCleanupKeeps: what auto-cleanup leaves alone, and that it
// never loses a qube record while volumes remain.
func TestDisposableCleanupKeeps(t *testing.T) {
	e := startDispEnv(t)
	dvm := e.dispTemplate(t, "keep")
	tests := []struct {
		name string
		// before runs before the start; after runs once the disposable has
		// stopped and the clean-up had its chance, and says why it stays
		before func(t *testing.T, disp string)
		after  func(t *testing.T, disp string)
	}{
		{"a volume that cannot be removed keeps the qube",
			func(t *testing.T, disp string) {
				e.mem.Fail("Remove", "appvms/"+disp+"/private", errors.New("pool on fire"))
			},
			func(t *testing.T, disp string) {
				vid := "appvms/" + disp + "/private"
				waitUntil(t, "the clean-up's remove of "+vid, func() bool { return e.mem.Calls("Remove", vid) > 0 })
				// the record stays; so does the volume that could not go
				if !e.exists(disp) || !e.saved(t, disp) {
					t.Fatal("the qube was removed although a volume could not be")
				}
				if !e.mem.Has("varlibqubes", vid) {
					t.Error("the volume that failed to go is gone")
				}
				// qvm-remove finishes the job once the pool works
				e.mem.Fail("Remove", vid, nil)
				e.call(t, "admin.vm.Remove", disp, "", "")
				if e.mem.Has("varlibqubes", vid) {
					t.Error("the volume is still there after admin.vm.Remove")
				}
			}},
		{"auto_cleanup turned off keeps the qube",
			func(t *testing.T, disp string) {
				e.call(t, "admin.vm.property.Set", disp, "auto_cleanup", "False")
			},
			func(t *testing.T, disp string) {
				if s := e.listState(t, disp); s != "Halted" {
					t.Errorf("state = %s", s)
				}
				e.call(t, "admin.vm.Remove", disp, "", "")
			}},
		{"a disposable still referenced is kept whole",
			func(t *testing.T, disp string) {
				e.call(t, "admin.vm.property.Set", disp, "provides_network", "True")
				e.call(t, "admin.vm.property.Set", "vm0005", "netvm", disp)
			},
			func(t *testing.T, disp string) {
				// the reaper removes what the clean-up after the stop
				// would, under the same lock: both refuse
				if got := e.d.Lifecycle().ReapDisposables(context.Background(), e.d.Lifecycle().Orphans()); slices.Contains(got, disp) {
					t.Errorf("a referenced disposable was removed: %v", got)
				}
				if !e.exists(disp) || !e.mem.Has("varlibqubes", "appvms/"+disp+"/private") {
					t.Error("a referenced disposable lost its record or its volume")
				}
				// once the reference is gone, it goes (by the reaper, or by
				// a clean-up that was still waiting for the lock)
				e.call(t, "admin.vm.property.Reset", "vm0005", "netvm", "")
				e.d.Lifecycle().ReapDisposables(context.Background(), e.d.Lifecycle().Orphans())
				waitUntil(t, disp+" removed", func() bool { return !e.exists(disp) })
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.recordLife(t)
			disp := e.createDisposable(t, "dom0", dvm, "")
			tt.before(t, disp)
			e.call(t, "admin.vm.Start", disp, "", "")
			e.call(t, "admin.vm.Kill", disp, "", "")
			r.waitFor(t, "domain-shutdown")
			tt.after(t, disp)
			if e.exists(disp) {
				t.Errorf("%s is still there after admin.vm.Remove", disp)
			}
		})
	}
}

// TestCreateDisposableAllOrNothing: a volume that cannot be created takes
// the disposable's other volumes and its record with it.
func TestCreateDisposableAllOrNothing(t *testing.T) {
	e := startDispEnv(t)
	dvm := e.dispTemplate(t, "aon")
	before := e.call(t, "admin.vm.List", "dom0", "", "")
	// hold the first volume's create to learn the name, then make the
	// last volume fail
	gate := e.mem.Block("Create", "")
	done := make(chan string, 1)
	go func() {
		_, err := e.c.Call(context.Background(), "admin.vm.CreateDisposable", dvm, "", nil)
		done <- fmt.Sprint(err)
	}()
	root := <-gate.Entered()
	disp := strings.TrimSuffix(strings.TrimPrefix(root, "appvms/"), "/root")
	volatile := "appvms/" + disp + "/volatile"
	e.mem.Fail("Create", volatile, errors.New("pool on fire"))
	defer e.mem.Fail("Create", volatile, nil)
	gate.Release()
	if err := <-done; !strings.Contains(err, "pool on fire") {
		t.Errorf("CreateDisposable with a volume that cannot be created: %s", err)
	}
	for _, v := range []string{"root", "private", "volatile"} {
		if e.mem.Has("varlibqubes", "appvms/"+disp+"/"+v) {
			t.Errorf("volume %s of the failed disposable is left in the pool", v)
		}
	}
	if after := e.call(t, "admin.vm.List", "dom0", "", ""); after != before || e.saved(t, disp) {
		t.Errorf("a failed CreateDisposable left %s behind:\nbefore %s\nafter  %s", disp, before, after)
	}
}

// TestDisposableStartRefused: a disposable whose start fails before it
// ever ran is removed all the same.
func TestDisposableStartRefused(t *testing.T) {
	e := startDispEnv(t)

	t.Run("a failed start removes the disposable", func(t *testing.T) {
		dvm := e.dispTemplate(t, "sf")
		disp := e.createDisposable(t, "dom0", dvm, "")
		vids := e.volumeVIDs(t, disp)
		e.mem.Fail("Start", vids[len(vids)-1], errors.New("disk on fire"))
		defer e.mem.Fail("Start", vids[len(vids)-1], nil)
		if err := e.callErr("admin.vm.Start", disp, ""); !strings.Contains(err, "disk on fire") {
			t.Fatalf("start: %s", err)
		}
		waitUntil(t, disp+" removed after its failed start", func() bool { return !e.exists(disp) && !e.saved(t, disp) })
	})
}
