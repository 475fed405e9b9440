package qubes

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/store"
)

// recorder is an Observer-tier subscriber that records events as the Admin
// API's event stream shows them: subject, name, kwargs as text.
type recorder struct{ lines []string }

func (r *recorder) attach(a *App) func() {
	return a.Bus().Subscribe("*", events.Observer, func(e *events.Event) error {
		r.lines = append(r.lines, formatEvent(e))
		return nil
	})
}

func formatEvent(e *events.Event) string {
	subj := ""
	if q, ok := e.Subject.(*Qube); ok {
		subj = q.Name()
	}
	var kv []string
	for _, a := range e.Kwargs {
		v := "None"
		if a.Value != nil {
			v = property.FormatValue(a.Value)
		}
		if q, ok := a.Value.(*Qube); ok && q == nil {
			v = "None"
		}
		kv = append(kv, a.Key+"="+v)
	}
	return subj + " " + e.Name + " " + strings.Join(kv, ",")
}

func set(t *testing.T, a *App, q *Qube, name, text string) error {
	t.Helper()
	_, err := a.Write(func() error {
		var h interface {
			Descriptor(string) (*P, error)
			SetText(*P, string) error
		} = a
		if q != nil {
			h = q
		}
		d, err := h.Descriptor(name)
		if err != nil {
			return err
		}
		return h.SetText(d, text)
	})
	return err
}

func reset(t *testing.T, a *App, q *Qube, name string) error {
	t.Helper()
	_, err := a.Write(func() error {
		var h interface {
			Descriptor(string) (*P, error)
			Reset(*P) error
		} = a
		if q != nil {
			h = q
		}
		d, err := h.Descriptor(name)
		if err != nil {
			return err
		}
		return h.Reset(d)
	})
	return err
}

func qube(t *testing.T, a *App, name string) *Qube {
	t.Helper()
	q, err := a.Qube(name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func text(t *testing.T, q interface {
	Get(string) (any, error)
	Descriptor(string) (*P, error)
}, name string) string {
	t.Helper()
	d, err := q.Descriptor(name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := q.Get(name)
	if err != nil {
		return "<no value>"
	}
	return d.Text(v)
}

// TestEventsMatchReference replays the property changes of the reference's
// recorded mutating sequence on the model and compares the events with the
// events the reference emitted, in order.
func TestEventsMatchReference(t *testing.T) {
	a, _, _ := loadFixture(t)
	reqs := readTranscript(t, "admin-api/public-n10-mutate.jsonl")
	type ev struct {
		AfterReq int        `json:"after_req"`
		Subject  string     `json:"subject"`
		Event    string     `json:"event"`
		Kwargs   [][]string `json:"kwargs"`
	}
	want := map[int][]string{}
	raw, err := os.ReadFile(fixturePath(t, "admin-api/public-n10-mutate-events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var e ev
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		var kv []string
		for _, p := range e.Kwargs {
			kv = append(kv, p[0]+"="+p[1])
		}
		// after_req is the index of the request that caused the event
		want[e.AfterReq] = append(want[e.AfterReq], e.Subject+" "+e.Event+" "+strings.Join(kv, ","))
	}
	rec := &recorder{}
	rec.attach(a)
	replayed := 0
	for i, r := range reqs {
		// stop before the first request whose effects need more than the
		// model (extensions, storage, lifecycle)
		if r.Req.Method == "admin.property.Set" && r.Req.Arg == "clockvm" {
			break
		}
		var q *Qube
		switch r.Req.Method {
		case "admin.vm.property.Set", "admin.vm.property.Reset":
			q = qube(t, a, r.Req.Dest)
		case "admin.property.Set", "admin.property.Reset":
		default:
			continue
		}
		rec.lines = nil
		if strings.HasSuffix(r.Req.Method, ".Set") {
			err = set(t, a, q, r.Req.Arg, r.Req.Payload)
		} else {
			err = reset(t, a, q, r.Req.Arg)
		}
		if ok := strings.HasPrefix(r.RespText, "0"); ok != (err == nil) {
			t.Fatalf("request %d %s %s %s: reference answered %q, model error %v", i, r.Req.Method, r.Req.Dest, r.Req.Arg, r.RespText, err)
		}
		if got, exp := strings.Join(rec.lines, "\n"), strings.Join(want[i], "\n"); got != exp {
			t.Errorf("request %d %s %s %s=%q: events differ\nwant:\n%s\ngot:\n%s", i, r.Req.Method, r.Req.Dest, r.Req.Arg, r.Req.Payload, exp, got)
		}
		replayed++
	}
	if replayed < 15 {
		t.Fatalf("only %d requests replayed", replayed)
	}
}

func TestNetworkLoopsRefusedOnEveryPath(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, a *App) error
		kind    qerr.Kind
		message string
	}{
		{"set to itself", func(t *testing.T, a *App) error { return set(t, a, qube(t, a, "sys-net"), "netvm", "sys-net") },
			qerr.ValueError, "Loops in network are unsupported"},
		{"set to a downstream qube", func(t *testing.T, a *App) error {
			return set(t, a, qube(t, a, "sys-net"), "netvm", "sys-firewall")
		}, qerr.ValueError, "Loops in network are unsupported"},
		{"reset to a default that loops", func(t *testing.T, a *App) error {
			// sys-net has netvm explicitly none; the default is sys-firewall, which sits behind sys-net
			return reset(t, a, qube(t, a, "sys-net"), "netvm")
		}, qerr.ValueError, "Loops in network are unsupported"},
		{"default_netvm to a qube that follows the default", func(t *testing.T, a *App) error {
			if err := set(t, a, qube(t, a, "vm0001"), "provides_network", "True"); err != nil {
				return err
			}
			return set(t, a, nil, "default_netvm", "vm0001")
		}, qerr.PropertyValueError, "Network loop on 'vm0001'"},
		{"default_netvm to a qube downstream of a follower", func(t *testing.T, a *App) error {
			// vm0002 follows the default (sys-firewall); vm0003 gets netvm vm0002
			if err := set(t, a, qube(t, a, "vm0002"), "provides_network", "True"); err != nil {
				return err
			}
			if err := set(t, a, qube(t, a, "vm0003"), "provides_network", "True"); err != nil {
				return err
			}
			if err := set(t, a, qube(t, a, "vm0003"), "netvm", "vm0002"); err != nil {
				return err
			}
			return set(t, a, nil, "default_netvm", "vm0003")
		}, qerr.PropertyValueError, "Network loop on 'vm0002'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := loadFixture(t)
			var before []byte
			_ = a.Read(func() error { before = store.Encode(a.Document()); return nil })
			err := tc.change(t, a)
			if err == nil {
				t.Fatal("the change was accepted; want a refusal")
			}
			if qerr.KindOf(err) != tc.kind || err.Error() != tc.message {
				t.Fatalf("got %s %q, want %s %q", qerr.KindOf(err), err, tc.kind, tc.message)
			}
			// nothing of the refused change itself may stick: the netvm graph
			// still has no loop
			_ = a.Read(func() error {
				for _, q := range a.Qubes() {
					seen := map[*Qube]bool{}
					for n := q; n != nil; n = n.vm("netvm") {
						if seen[n] {
							t.Fatalf("loop through %s after a refused change", q.Name())
						}
						seen[n] = true
					}
				}
				return nil
			})
			_ = before
		})
	}
}

func TestLoadBreaksNetworkLoops(t *testing.T) {
	raw, err := os.ReadFile(fixturePath(t, "qubes-n10.xml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := testDataDir(t)
	s := strings.ReplaceAll(string(raw), refDataDir, dir)
	// sys-net → sys-firewall → sys-net
	s = strings.Replace(s, `<property name="netvm"></property>`, `<property name="netvm">sys-firewall</property>`, 1)
	doc, err := store.Decode([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	a, rep, err := Load(doc, testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Repairs) == 0 || !strings.Contains(strings.Join(rep.Repairs, "\n"), "network loop") {
		t.Errorf("repairs = %q, want a broken network loop reported", rep.Repairs)
	}
	_ = a.Read(func() error {
		n1, n2 := qube(t, a, "sys-net").vm("netvm"), qube(t, a, "sys-firewall").vm("netvm")
		if n1 != nil && n2 != nil {
			t.Errorf("loop still there: sys-net→%v, sys-firewall→%v", n1, n2)
		}
		return nil
	})
}

func TestQuarantine(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(string) string
		quarantined []string
		errText     string
	}{
		{"invalid property value", func(s string) string {
			return strings.Replace(s, `<property name="name">vm0005</property>`, `<property name="name">vm0005</property>`+"\n        <property name=\"memory\">lots</property>", 1)
		}, []string{"vm0005"}, "Failed to parse property value as int"},
		{"unknown property", func(s string) string {
			return strings.Replace(s, `<property name="name">vm0006</property>`, `<property name="name">vm0006</property>`+"\n        <property name=\"frobnicate\">1</property>", 1)
		}, []string{"vm0006"}, "not applicable"},
		{"unknown class", func(s string) string {
			return strings.Replace(s, `<domain id="domain-9" class="AppVM">`, `<domain id="domain-9" class="ToasterVM">`, 1)
		}, []string{"vm0006"}, "no such VM class"},
		{"reference to a missing qube", func(s string) string {
			i := strings.Index(s, `<property name="name">vm0007</property>`)
			j := i + strings.Index(s[i:], `<property name="template">debian-12-xfce</property>`)
			return s[:j] + `<property name="template">gone-template</property>` + s[j+len(`<property name="template">debian-12-xfce</property>`):]
		}, []string{"vm0007"}, "non-existing qube gone-template"},
		{"a qube behind a quarantined netvm", func(s string) string {
			// sys-firewall breaks; every qube using it explicitly follows it into quarantine
			s = strings.Replace(s, `<property name="name">sys-firewall</property>`, `<property name="name">sys-firewall</property>`+"\n        <property name=\"vcpus\">0</property>", 1)
			return s
		}, []string{"sys-firewall"}, "vcpus must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := os.ReadFile(fixturePath(t, "qubes-n10.xml"))
			if err != nil {
				t.Fatal(err)
			}
			dir := testDataDir(t)
			src := tc.edit(strings.ReplaceAll(string(raw), refDataDir, dir))
			doc, err := store.Decode([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			a, rep, err := Load(doc, testOptions(dir))
			if err != nil {
				t.Fatalf("load failed as a whole: %v", err)
			}
			var names []string
			for _, q := range rep.Quarantined {
				names = append(names, q.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.quarantined, ",") {
				t.Fatalf("quarantined %v, want %v", names, tc.quarantined)
			}
			if !strings.Contains(rep.Quarantined[0].Err.Error(), tc.errText) {
				t.Errorf("error %q does not say %q", rep.Quarantined[0].Err, tc.errText)
			}
			// every other qube is intact and usable
			_ = a.Read(func() error {
				if got := a.Len() + len(rep.Quarantined); got != 14 {
					t.Errorf("%d qubes + quarantined, want 14", got)
				}
				if _, err := a.Qube(tc.quarantined[0]); err == nil {
					t.Errorf("quarantined %s is usable", tc.quarantined[0])
				}
				return nil
			})
			if err := set(t, a, qube(t, a, "vm0001"), "memory", "800"); err != nil {
				t.Errorf("the rest of the model is not writable: %v", err)
			}
			_ = reset(t, a, qube(t, a, "vm0001"), "memory")
			// saving keeps the broken record byte for byte
			var out []byte
			_ = a.Read(func() error { out = store.Encode(a.Document()); return nil })
			if string(out) != src {
				t.Errorf("saving changed the file:\n%s", firstDiff(src, string(out)))
			}
		})
	}
}

func TestRemove(t *testing.T) {
	a, _, _ := loadFixture(t)
	err := func() error {
		_, err := a.Write(func() error { return a.Remove(qube(t, a, "debian-12-xfce")) })
		return err
	}()
	if qerr.KindOf(err) != qerr.VMInUse {
		t.Fatalf("removing the template: %v, want QubesVMInUseError", err)
	}
	for _, ref := range []string{"@GLOBAL:default_template", "sys-net:template", "vm0010:template"} {
		if !strings.Contains(err.Error(), ref) {
			t.Errorf("message %q does not name %s", err, ref)
		}
	}
	_, err = a.Write(func() error { return a.Remove(a.AdminVM()) })
	if err == nil || err.Error() != "'dom0' cannot be removed" {
		t.Errorf("removing dom0: %v", err)
	}
	rec := &recorder{}
	rec.attach(a)
	if _, err := a.Write(func() error { return a.Remove(qube(t, a, "vm0010")) }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.lines, "\n"); got != " domain-pre-delete vm=vm0010\n domain-delete vm=vm0010" {
		t.Errorf("events:\n%s", got)
	}
	if _, err := a.Qube("vm0010"); qerr.KindOf(err) != qerr.VMNotFound {
		t.Errorf("vm0010 still there: %v", err)
	}
}

func TestDisposables(t *testing.T) {
	a, _, _ := loadFixture(t)
	red, _ := a.Label("red")
	_, err := a.Write(func() error {
		_, err := a.Create(DispVMClass, CreateOptions{Label: red, Template: qube(t, a, "vm0001")})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "template_for_dispvms") {
		t.Fatalf("disposable from a non-disposable template: %v", err)
	}
	if err := set(t, a, qube(t, a, "vm0001"), "template_for_dispvms", "True"); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for range 20 {
		var d *Qube
		if _, err := a.Write(func() error {
			var err error
			d, err = a.Create(DispVMClass, CreateOptions{Label: red, Template: qube(t, a, "vm0001"), AutoCleanup: true})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		_ = a.Read(func() error {
			id := d.integer("dispid")
			if seen[id] {
				t.Errorf("dispid %d given twice", id)
			}
			seen[id] = true
			if d.Name() != fmt.Sprintf("disp%d", id) {
				t.Errorf("name %s for dispid %d", d.Name(), id)
			}
			if got, want := text(t, d, "ip"), vmidToIPv4("10.138", id); got != want {
				t.Errorf("ip %s, want %s", got, want)
			}
			if text(t, d, "include_in_backups") != "False" || text(t, d, "default_dispvm") != "vm0001" {
				t.Errorf("disposable defaults wrong: include_in_backups=%s default_dispvm=%s", text(t, d, "include_in_backups"), text(t, d, "default_dispvm"))
			}
			return nil
		})
	}
	// template_for_dispvms cannot be turned off while disposables use it
	err = set(t, a, qube(t, a, "vm0001"), "template_for_dispvms", "False")
	if qerr.KindOf(err) != qerr.VMInUse {
		t.Errorf("turning template_for_dispvms off under disposables: %v", err)
	}
}

func TestVMIDToIPv4(t *testing.T) {
	for _, tc := range []struct {
		id   int
		want string
	}{{3, "10.137.0.3"}, {254, "10.137.0.254"}, {255, "10.137.1.1"}, {509, "10.137.2.1"}, {8987, "10.137.35.97"}} {
		if got := vmidToIPv4("10.137", tc.id); got != tc.want {
			t.Errorf("vmid %d: %s, want %s", tc.id, got, tc.want)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct{ name, err string }{
		{"work", ""}, {"a.b_c-d", ""},
		{"1abc", "VM name cannot start with hyphen, underscore, dot or numbers"},
		{"-vm", "VM name cannot start with hyphen, underscore, dot or numbers"},
		{"ab/cd", "VM name contains illegal characters"}, {"", "VM name contains illegal characters"},
		{"abcdefghijklmnopqrstuvwxyz0123456", "VM name must be shorter than 32 characters"},
		{"none", "VM name cannot be 'none' nor 'default'"}, {"Domain-0", "VM name cannot be 'Domain-0'"},
		{"sys-dm", "VM name cannot end with -dm"},
	} {
		err := ValidateName(tc.name)
		if (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("ValidateName(%q) = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestNewSystem(t *testing.T) {
	a := NewSystem(testOptions(t.TempDir()))
	var doc *store.Document
	_ = a.Read(func() error { doc = a.Document(); return nil })
	if len(doc.Labels) != 8 || len(doc.Pools) != 2 || len(doc.Domains) != 1 || doc.Domains[0].Class != "AdminVM" {
		t.Fatalf("new system: %d labels, %d pools, %d domains", len(doc.Labels), len(doc.Pools), len(doc.Domains))
	}
	b, _, err := Load(doc, a.Options())
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(nil, nil) || b.Len() != 1 {
		t.Fatal("reloading a new system lost dom0")
	}
}

// TestLegacyMigrations loads settings of older qubes.xml files: hvm becomes
// virt_mode, dispvm_allowed becomes template_for_dispvms, default_fw_netvm
// is dropped (network providers that followed it keep it explicitly).
func TestLegacyMigrations(t *testing.T) {
	raw, err := os.ReadFile(fixturePath(t, "qubes-n10.xml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := testDataDir(t)
	s := strings.ReplaceAll(string(raw), refDataDir, dir)
	s = strings.Replace(s, `<property name="name">vm0001</property>`, `<property name="hvm">True</property>`+"\n        "+`<property name="name">vm0001</property>`, 1)
	s = strings.Replace(s, `<property name="name">vm0002</property>`, `<property name="dispvm_allowed">True</property>`+"\n        "+`<property name="hvm">False</property>`+"\n        "+`<property name="name">vm0002</property>`, 1)
	s = strings.Replace(s, `<property name="name">vm0003</property>`, `<property name="name">vm0003</property>`+"\n        "+`<property name="provides_network">True</property>`, 1)
	s = strings.Replace(s, `<property name="default_kernel">`, `<property name="default_fw_netvm">sys-net</property>`+"\n    "+`<property name="default_kernel">`, 1)
	doc, err := store.Decode([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	a, rep, err := Load(doc, testOptions(dir))
	if err != nil || len(rep.Quarantined) > 0 {
		t.Fatalf("load: %v, quarantined %v", err, rep.Quarantined)
	}
	for _, tc := range []struct{ qube, prop, want string }{
		{"vm0001", "virt_mode", "hvm"},
		{"vm0002", "virt_mode", "pv"},
		{"vm0002", "template_for_dispvms", "True"},
		{"vm0003", "netvm", "sys-net"},      // a provider that followed default_fw_netvm
		{"vm0004", "netvm", "sys-firewall"}, // a plain qube still follows default_netvm
	} {
		if got := text(t, qube(t, a, tc.qube), tc.prop); got != tc.want {
			t.Errorf("%s %s = %s, want %s", tc.qube, tc.prop, got, tc.want)
		}
	}
	d, _ := a.Snapshot()
	out := string(store.Encode(d))
	for _, gone := range []string{`"hvm"`, `"dispvm_allowed"`, `"default_fw_netvm"`} {
		if strings.Contains(out, gone) {
			t.Errorf("saved store still has %s", gone)
		}
	}
}
