package admin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTranscriptReplies sends every ordinary request of the reference
// transcripts through EncodeRequest and Raw, and checks that the reply comes
// back byte for byte and that ParseReply reads it as the reference client
// would.
func TestTranscriptReplies(t *testing.T) {
	for _, file := range []string{"public-n10-read.jsonl", "public-n10-mutate.jsonl"} {
		entries := loadTranscript(t, file)
		var n int
		for i, e := range entries {
			payload, ok := e.simple()
			if !ok || e.Req.DestType != "" {
				continue
			}
			want := e.reply()
			s := newFakeServer(t, replyWith(func(req []byte) []byte {
				wantReq := e.Req.Method + "+" + e.Req.Arg + " " + e.Req.Src + " name " + e.Req.Dest + "\x00" + string(payload)
				if string(req) != wantReq {
					t.Errorf("%s:%d: request %q, want %q", file, i, req, wantReq)
				}
				return want
			}))
			c := New(s.path)
			req, err := EncodeRequest(e.Req.Src, e.Req.Method, e.Req.Dest, e.Req.Arg, payload)
			if err != nil {
				// Requests the reference accepted but our encoder refuses
				// (none expected among simple entries).
				t.Errorf("%s:%d: EncodeRequest: %v", file, i, err)
				continue
			}
			got, err := c.Raw(context.Background(), req)
			if err != nil {
				t.Fatalf("%s:%d: Raw: %v", file, i, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s:%d: reply %q, want %q", file, i, got, want)
			}
			body, err := ParseReply(got)
			switch {
			case len(want) == 0:
				if !errors.Is(err, ErrEmptyReply) {
					t.Errorf("%s:%d: empty reply parsed as %q, %v", file, i, body, err)
				}
			case want[0] == '0':
				if err != nil || !bytes.Equal(body, want[2:]) {
					t.Errorf("%s:%d: ParseReply = %q, %v", file, i, body, err)
				}
			case want[0] == '2':
				var de *Error
				if !errors.As(err, &de) {
					t.Fatalf("%s:%d: ParseReply error %v, want *Error", file, i, err)
				}
				parts := strings.Split(string(want), "\x00")
				if de.Type != parts[1] || de.Message != strings.ReplaceAll(parts[3], "%%", "%") || de.Error() != de.Message {
					t.Errorf("%s:%d: got %+v from %q", file, i, de, want)
				}
			}
			n++
		}
		if n < 150 {
			t.Errorf("%s: only %d entries checked", file, n)
		}
	}
}

func TestListVMs(t *testing.T) {
	c, r := newReplayServer(t)
	ctx := context.Background()
	vms, err := c.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 14 {
		t.Fatalf("got %d qubes, want 14", len(vms))
	}
	want := VMInfo{Name: "dom0", Class: "AdminVM", State: "Running", UUID: "00000000-0000-0000-0000-000000000000"}
	if vms[0] != want {
		t.Errorf("first qube %+v, want %+v", vms[0], want)
	}
	if vms[1].Name != "debian-12-xfce" || vms[1].Class != "TemplateVM" || vms[1].State != "Halted" {
		t.Errorf("second qube %+v", vms[1])
	}
	vm, err := c.VM(ctx, "vm0001")
	if err != nil || vm.Name != "vm0001" || vm.Class != "AppVM" || vm.UUID != "01df9a1f-44de-4e7b-a0b9-7147d1b02387" {
		t.Errorf("VM(vm0001) = %+v, %v", vm, err)
	}
	_, err = c.VM(ctx, "nosuchvm")
	if !IsNotFound(err) || !IsType(err, TypeVMNotFound) || err.Error() != "No such domain: 'nosuchvm'" {
		t.Errorf("VM(nosuchvm) error %v", err)
	}
	classes, err := c.VMClasses(ctx)
	if err != nil || strings.Join(classes, ",") != "AdminVM,AppVM,DispVM,RemoteVM,StandaloneVM,TemplateVM" {
		t.Errorf("VMClasses = %v, %v", classes, err)
	}
	st, err := c.CurrentState(ctx, "vm0001")
	if err != nil || st.PowerState != "Halted" || st.Mem != 0 || st.Fields["cputime"] != "0" {
		t.Errorf("CurrentState = %+v, %v", st, err)
	}
	if len(r.misses) > 0 {
		t.Errorf("unanswered requests: %v", r.misses)
	}
}

func TestProperties(t *testing.T) {
	c, r := newReplayServer(t)
	ctx := context.Background()

	p, err := c.Property(ctx, "vm0001", "label")
	if err != nil || p != (Property{Name: "label", IsDefault: false, Type: PropLabel, Value: "orange"}) {
		t.Errorf("Property(label) = %+v, %v", p, err)
	}
	p, err = c.Property(ctx, "vm0001", "default_dispvm")
	if err != nil || p != (Property{Name: "default_dispvm", IsDefault: true, Type: PropVM, Value: ""}) {
		t.Errorf("Property(default_dispvm) = %+v, %v", p, err)
	}
	_, err = c.Property(ctx, "dom0", "netvm")
	if !IsType(err, TypeNoSuchProperty) || IsNotFound(err) || err.Error() != "Invalid property 'netvm' of dom0" {
		t.Errorf("Property(dom0, netvm) error %v", err)
	}

	all, err := c.Properties(ctx, "vm0001")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Property{}
	for _, p := range all {
		byName[p.Name] = p
	}
	names, err := c.PropertyNames(ctx, "vm0001")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(all) {
		t.Errorf("List has %d names, GetAll %d", len(names), len(all))
	}
	for _, n := range names {
		if _, ok := byName[n]; !ok {
			t.Errorf("GetAll lacks %s", n)
		}
	}
	if p := byName["dns"]; p.Value != "10.139.1.1 10.139.1.2" || p.Type != PropStr || !p.IsDefault {
		t.Errorf("dns = %+v", p)
	}
	if p := byName["netvm"]; p.Value != "sys-firewall" || p.Type != PropVM {
		t.Errorf("netvm = %+v", p)
	}
	if n, err := byName["vcpus"].Int(); err != nil || n != 2 {
		t.Errorf("vcpus = %d, %v", n, err)
	}
	if b, err := byName["include_in_backups"].Bool(); err != nil || !b {
		t.Errorf("include_in_backups = %v, %v", b, err)
	}
	if _, err := byName["backup_timestamp"].Int(); err == nil {
		t.Errorf("empty int parsed")
	}
	// Every single Get agrees with GetAll.
	for _, n := range names {
		p, err := c.Property(ctx, "vm0001", n)
		if err != nil {
			t.Errorf("Get %s: %v", n, err)
			continue
		}
		if p != byName[n] {
			t.Errorf("Get %s = %+v, GetAll %+v", n, p, byName[n])
		}
	}

	d, ok, err := c.PropertyDefault(ctx, "vm0001", "vcpus")
	if err != nil || !ok || d.Type != PropInt || d.Value != "2" {
		t.Errorf("PropertyDefault(vcpus) = %+v, %v, %v", d, ok, err)
	}
	_, ok, err = c.PropertyDefault(ctx, "vm0001", "label")
	if err != nil || ok {
		t.Errorf("PropertyDefault(label) = %v, %v, want no default", ok, err)
	}
	help, err := c.PropertyHelp(ctx, "vm0001", "vcpus")
	if err != nil || help == "" {
		t.Errorf("PropertyHelp(vcpus) = %q, %v", help, err)
	}

	g, err := c.GlobalProperty(ctx, "clockvm")
	if err != nil || g != (Property{Name: "clockvm", Type: PropVM, Value: "sys-net"}) {
		t.Errorf("GlobalProperty(clockvm) = %+v, %v", g, err)
	}
	gall, err := c.GlobalProperties(ctx)
	if err != nil || len(gall) < 20 {
		t.Errorf("GlobalProperties = %d, %v", len(gall), err)
	}
	gnames, err := c.GlobalPropertyNames(ctx)
	if err != nil || len(gnames) != len(gall) {
		t.Errorf("GlobalPropertyNames = %d, %v", len(gnames), err)
	}
	if _, ok, err := c.GlobalPropertyDefault(ctx, "default_kernel"); ok || err != nil {
		t.Errorf("GlobalPropertyDefault(default_kernel) = %v, %v", ok, err)
	}
	if _, err := c.GlobalPropertyHelp(ctx, "nosuchprop"); !IsType(err, TypeNoSuchProperty) {
		t.Errorf("GlobalPropertyHelp(nosuchprop): %v", err)
	}

	// Writes, from the mutating transcript.
	if err := c.SetProperty(ctx, "vm0001", "label", "blue"); err != nil {
		t.Error(err)
	}
	if err := c.SetProperty(ctx, "vm0001", "memory", "-1"); !IsType(err, TypePropertyValueError) {
		t.Errorf("SetProperty(memory, -1): %v", err)
	}
	if err := c.ResetProperty(ctx, "vm0001", "nosuchprop"); !IsType(err, TypeNoSuchProperty) {
		t.Errorf("ResetProperty(nosuchprop): %v", err)
	}
	if err := c.SetGlobalProperty(ctx, "stats_interval", "5"); err != nil {
		t.Error(err)
	}
	if err := c.ResetGlobalProperty(ctx, "stats_interval"); err != nil {
		t.Error(err)
	}
	if len(r.misses) > 0 {
		t.Errorf("unanswered requests: %v", r.misses)
	}
}

func TestGetAllEscapes(t *testing.T) {
	s := newFakeServer(t, replyWith(func([]byte) []byte {
		return []byte("0\x00kernelopts default=False type=str opt1\\nopt2\\nopt3\\\\opt4\nnetvm default=True type=vm \n")
	}))
	props, err := New(s.path).Properties(context.Background(), "work")
	if err != nil {
		t.Fatal(err)
	}
	want := []Property{
		{Name: "kernelopts", Type: "str", Value: "opt1\nopt2\nopt3\\opt4"},
		{Name: "netvm", IsDefault: true, Type: "vm"},
	}
	if len(props) != 2 || props[0] != want[0] || props[1] != want[1] {
		t.Errorf("got %+v, want %+v", props, want)
	}
	for _, bad := range []string{"x default=True type=str a\\tb\n", "x dflt=True type=str a\n", "x default=True\n", "x default=Maybe type=str a\n"} {
		s := newFakeServer(t, replyWith(func([]byte) []byte { return []byte("0\x00" + bad) }))
		if _, err := New(s.path).Properties(context.Background(), "work"); !errors.Is(err, ErrMalformedReply) {
			t.Errorf("%q: error %v, want ErrMalformedReply", bad, err)
		}
	}
}

func TestFeaturesTagsLabels(t *testing.T) {
	c, r := newReplayServer(t)
	ctx := context.Background()

	fs, err := c.Features(ctx, "sys-net")
	if err != nil || len(fs) != 1 || fs[0] != "service.clocksync" {
		t.Errorf("Features = %v, %v", fs, err)
	}
	if v, err := c.Feature(ctx, "vm0002", "baseline-index"); err != nil || v != "2" {
		t.Errorf("Feature = %q, %v", v, err)
	}
	_, err = c.Feature(ctx, "vm0001", "no-such-feature")
	if !IsNotFound(err) || !IsType(err, TypeFeatureNotFound) || err.Error() != "Feature not set for domain vm0001: no-such-feature" {
		t.Errorf("Feature(no-such-feature): %v", err)
	}
	if v, err := c.CheckFeatureWithTemplate(ctx, "sys-net", "service.clocksync"); err != nil || v != "1" {
		t.Errorf("CheckFeatureWithTemplate = %q, %v", v, err)
	}
	for _, f := range []func(context.Context, string, string) (string, error){
		c.CheckFeatureWithNetvm, c.CheckFeatureWithAdminVM, c.CheckFeatureWithTemplateAndAdminVM,
	} {
		if v, err := f(ctx, "vm0001", "baseline-index"); err != nil || v != "1" {
			t.Errorf("CheckFeatureWith* = %q, %v", v, err)
		}
	}
	if err := c.SetFeature(ctx, "vm0001", "gui", "1"); err != nil {
		t.Error(err)
	}
	if err := c.SetFeature(ctx, "vm0001", "preload-dispvm", ""); !IsType(err, TypePermissionDenied) {
		t.Errorf("SetFeature(preload-dispvm): %v", err)
	}
	if err := c.RemoveFeature(ctx, "vm0001", "no-such-feature"); !IsNotFound(err) {
		t.Errorf("RemoveFeature(no-such-feature): %v", err)
	}

	tags, err := c.Tags(ctx, "vm0001")
	if err != nil || strings.Join(tags, ",") != "audiovm-dom0,baseline,guivm-dom0" {
		t.Errorf("Tags = %v, %v", tags, err)
	}
	if has, err := c.HasTag(ctx, "vm0001", "baseline"); err != nil || !has {
		t.Errorf("HasTag(baseline) = %v, %v", has, err)
	}
	if has, err := c.HasTag(ctx, "vm0001", "no-such-tag"); err != nil || has {
		t.Errorf("HasTag(no-such-tag) = %v, %v", has, err)
	}
	if err := c.AddTag(ctx, "vm0001", "mytag"); err != nil {
		t.Error(err)
	}
	if err := c.RemoveTag(ctx, "vm0001", "no-such-tag"); !IsNotFound(err) || !IsType(err, TypeTagNotFound) {
		t.Errorf("RemoveTag(no-such-tag): %v", err)
	}
	if err := c.AddTag(ctx, "vm0001", "bad!tag"); !IsType(err, "QubesInvalidTagError") {
		t.Errorf("AddTag(bad!tag): %v", err)
	}

	labels, err := c.Labels(ctx)
	if err != nil || strings.Join(labels, ",") != "red,orange,yellow,green,gray,blue,purple,black" {
		t.Errorf("Labels = %v, %v", labels, err)
	}
	if col, err := c.LabelColor(ctx, "red"); err != nil || col != "0xcc0000" {
		t.Errorf("LabelColor(red) = %q, %v", col, err)
	}
	if i, err := c.LabelIndex(ctx, "black"); err != nil || i != 8 {
		t.Errorf("LabelIndex(black) = %d, %v", i, err)
	}
	if _, err := c.LabelIndex(ctx, "nosuchlabel"); !IsNotFound(err) || !IsType(err, TypeLabelNotFound) {
		t.Errorf("LabelIndex(nosuchlabel): %v", err)
	}
	if len(r.misses) > 0 {
		t.Errorf("unanswered requests: %v", r.misses)
	}
}

func TestVolumes(t *testing.T) {
	c, _ := newReplayServer(t)
	ctx := context.Background()
	vols, err := c.Volumes(ctx, "vm0001")
	if err != nil || strings.Join(vols, ",") != "root,private,volatile,kernel" {
		t.Errorf("Volumes = %v, %v", vols, err)
	}
	if vols, err := c.Volumes(ctx, "dom0"); err != nil || len(vols) != 0 {
		t.Errorf("Volumes(dom0) = %v, %v", vols, err)
	}
	vi, err := c.VolumeInfo(ctx, "vm0001", "root")
	if err != nil {
		t.Fatal(err)
	}
	if vi.Pool != "varlibqubes" || vi.Size != 10737418240 || !vi.RW || vi.Source != "vm-templates/debian-12-xfce/root" ||
		vi.SaveOnStop || !vi.SnapOnStart || vi.RevisionsToKeep != 1 || vi.Ephemeral || vi.IsOutdated || len(vi.Fields) != 12 {
		t.Errorf("VolumeInfo = %+v", vi)
	}
	if _, err := c.VolumeInfo(ctx, "vm0001", "nosuchvol"); !IsType(err, TypePermissionDenied) {
		t.Errorf("VolumeInfo(nosuchvol): %v", err)
	}
}

func TestCreateRemove(t *testing.T) {
	c, r := newReplayServer(t)
	ctx := context.Background()
	if err := c.Create(ctx, "AppVM", "debian-12-xfce", "newvm1", "red"); err != nil {
		t.Error(err)
	}
	if err := c.Create(ctx, "TemplateVM", "", "tpl2", "black"); err != nil {
		t.Error(err)
	}
	if err := c.CreateInPool(ctx, "AppVM", "debian-12-xfce", "newvm3", "blue", PoolSpec{Pool: "varlibqubes"}); err != nil {
		t.Error(err)
	}
	if err := c.CreateInPool(ctx, "AppVM", "debian-12-xfce", "newvm4", "purple", PoolSpec{Volumes: map[string]string{"private": "testpool"}}); err != nil {
		t.Error(err)
	}
	err := c.Create(ctx, "AppVM", "", "vm0001", "red")
	if !IsType(err, TypeVMAlreadyExists) || err.Error() != "Qube already exists: vm0001" {
		t.Errorf("Create(vm0001): %v", err)
	}
	if err := c.Create(ctx, "NoSuchClass", "", "x", "red"); !IsType(err, TypeProtocolError) {
		t.Errorf("Create(NoSuchClass): %v", err)
	}
	if err := c.Remove(ctx, "newvm2"); err != nil {
		t.Error(err)
	}
	err = c.Remove(ctx, "sys-net")
	if !IsType(err, TypeVMInUse) || !strings.HasPrefix(err.Error(), "Domain is in use: 'sys-net'") {
		t.Errorf("Remove(sys-net): %v", err)
	}
	if len(r.misses) > 0 {
		t.Errorf("unanswered requests: %v", r.misses)
	}

	// Client-side refusals: nothing is sent.
	for _, bad := range [][2]string{{"a b", "red"}, {"", "red"}, {"x", "red pool=x"}} {
		if err := c.Create(ctx, "AppVM", "", bad[0], bad[1]); err == nil || IsType(err, TypeProtocolError) {
			t.Errorf("Create(%q, %q) not refused: %v", bad[0], bad[1], err)
		}
	}
	if err := c.CreateInPool(ctx, "AppVM", "", "x", "red", PoolSpec{Pool: "a", Volumes: map[string]string{"root": "b"}}); err == nil {
		t.Error("CreateInPool with both forms not refused")
	}
}

func TestCreateSetsProperties(t *testing.T) {
	var reqs []string
	s := newFakeServer(t, replyWith(func(req []byte) []byte {
		reqs = append(reqs, string(req))
		if bytes.HasPrefix(req, []byte("admin.vm.property.Set+memory ")) {
			return []byte("2\x00QubesPropertyValueError\x00\x00memory must be positive\x00")
		}
		return []byte("0\x00")
	}))
	err := New(s.path).Create(context.Background(), "AppVM", "", "work", "green",
		KV{"memory", "-1"}, KV{"vcpus", "2"})
	var pe *PartialCreateError
	if !errors.As(err, &pe) || pe.VM != "work" || len(pe.Failed) != 1 || pe.Failed[0].Property != "memory" {
		t.Fatalf("error %v, want a PartialCreateError for memory", err)
	}
	if !IsType(err, TypePropertyValueError) {
		t.Errorf("IsType does not see through PartialCreateError: %v", err)
	}
	want := []string{
		"admin.vm.Create.AppVM+ dom0 name dom0\x00name=work label=green",
		"admin.vm.property.Set+memory dom0 name work\x00-1",
		"admin.vm.property.Set+vcpus dom0 name work\x002",
	}
	if strings.Join(reqs, "|") != strings.Join(want, "|") {
		t.Errorf("requests %q, want %q", reqs, want)
	}
}

// TestFraming checks the exact bytes on the wire and the handling of every
// kind of reply.
func TestFraming(t *testing.T) {
	ctx := context.Background()
	var got []byte
	s := newFakeServer(t, replyWith(func(req []byte) []byte {
		got = req
		return []byte("0\x00ok")
	}))
	c := New(s.path)
	body, err := c.Call(ctx, "admin.vm.feature.Set", "work", "gui", []byte("1"))
	if err != nil || string(body) != "ok" {
		t.Fatalf("Call = %q, %v", body, err)
	}
	if want := "admin.vm.feature.Set+gui dom0 name work\x001"; string(got) != want {
		t.Errorf("request %q, want %q", got, want)
	}
	if _, err := c.CallFrom(ctx, "mgmt", "admin.vm.List", "dom0", "", nil); err != nil {
		t.Fatal(err)
	}
	if want := "admin.vm.List+ mgmt name dom0\x00"; string(got) != want {
		t.Errorf("request %q, want %q", got, want)
	}

	for _, tc := range []struct {
		name  string
		reply string
		check func(t *testing.T, body []byte, err error)
	}{
		{"ok-empty", "0\x00", func(t *testing.T, body []byte, err error) {
			if err != nil || len(body) != 0 {
				t.Errorf("got %q, %v", body, err)
			}
		}},
		{"empty", "", func(t *testing.T, _ []byte, err error) {
			if !errors.Is(err, ErrEmptyReply) {
				t.Errorf("error %v, want ErrEmptyReply", err)
			}
		}},
		{"malformed", "hello", func(t *testing.T, _ []byte, err error) {
			if !errors.Is(err, ErrMalformedReply) || !strings.Contains(err.Error(), "malformed") {
				t.Errorf("error %v, want ErrMalformedReply", err)
			}
		}},
		{"event-frame", "1\x00\x00connection-established\x00\x00", func(t *testing.T, _ []byte, err error) {
			if !errors.Is(err, ErrMalformedReply) {
				t.Errorf("error %v, want ErrMalformedReply", err)
			}
		}},
		{"truncated-exception", "2\x00QubesException\x00\x00no terminator", func(t *testing.T, _ []byte, err error) {
			if !errors.Is(err, ErrMalformedReply) {
				t.Errorf("error %v, want ErrMalformedReply", err)
			}
		}},
		{"traceback", "2\x00QubesVMInUseError\x00Traceback (most recent call last):\n  File x\x00Domain is in use: 'x'\x00", func(t *testing.T, _ []byte, err error) {
			var e *Error
			if !errors.As(err, &e) || e.Type != "QubesVMInUseError" || e.Message != "Domain is in use: 'x'" ||
				!strings.HasPrefix(e.Traceback, "Traceback") || err.Error() != e.Message {
				t.Errorf("error %#v", err)
			}
		}},
		{"percent", "2\x00QubesException\x00\x00100%% broken\x00", func(t *testing.T, _ []byte, err error) {
			if err == nil || err.Error() != "100% broken" {
				t.Errorf("error %v", err)
			}
		}},
		{"no-message", "2\x00QubesException\x00\x00\x00", func(t *testing.T, _ []byte, err error) {
			if err == nil || err.Error() != "QubesException" {
				t.Errorf("error %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t, replyWith(func([]byte) []byte { return []byte(tc.reply) }))
			body, err := New(s.path).Call(ctx, "admin.vm.List", "dom0", "", nil)
			tc.check(t, body, err)
			raw, err := New(s.path).Raw(ctx, []byte("admin.vm.List+ dom0 name dom0\x00"))
			if err != nil || string(raw) != tc.reply {
				t.Errorf("Raw = %q, %v", raw, err)
			}
		})
	}
}

func TestLargeReplyAndRequest(t *testing.T) {
	big := bytes.Repeat([]byte("vm0001 class=AppVM state=Halted uuid=01df9a1f-44de-4e7b-a0b9-7147d1b02387\n"), 100000)
	var reqLen int
	s := newFakeServer(t, replyWith(func(req []byte) []byte {
		reqLen = len(req)
		return append([]byte("0\x00"), big...)
	}))
	c := New(s.path)
	vms, err := c.ListVMs(context.Background())
	if err != nil || len(vms) != 100000 {
		t.Fatalf("ListVMs = %d, %v", len(vms), err)
	}
	// A payload that fills the request to exactly the limit is sent whole.
	header := len("admin.vm.notes.Set+ dom0 name work\x00")
	if _, err := c.Call(context.Background(), "admin.vm.notes.Set", "work", "", bytes.Repeat([]byte("a"), MaxRequestSize-header)); err != nil {
		t.Fatal(err)
	}
	if reqLen != MaxRequestSize {
		t.Errorf("server read %d bytes, want %d", reqLen, MaxRequestSize)
	}
	// One byte more is refused before connecting.
	reqLen = -1
	_, err = c.Call(context.Background(), "admin.vm.notes.Set", "work", "", bytes.Repeat([]byte("a"), MaxRequestSize-header+1))
	if err == nil || !strings.Contains(err.Error(), "at most 65536") || reqLen != -1 {
		t.Errorf("oversized request: %v (server read %d)", err, reqLen)
	}
}

func TestEncodeRequest(t *testing.T) {
	req, err := EncodeRequest("dom0", "admin.vm.Shutdown", "work", "force+wait", nil)
	if err != nil || string(req) != "admin.vm.Shutdown+force+wait dom0 name work\x00" {
		t.Errorf("EncodeRequest = %q, %v", req, err)
	}
	for _, bad := range [][4]string{
		{"dom0", "admin.vm.List", "a b", ""},
		{"dom0", "admin.vm.List", "work", "x\x00"},
		{"dom 0", "admin.vm.List", "work", ""},
		{"dom0", "", "work", ""},
		{"dom0", "admin.vm.List", "", ""},
	} {
		if _, err := EncodeRequest(bad[0], bad[1], bad[2], bad[3], nil); err == nil {
			t.Errorf("EncodeRequest(%q) accepted", bad)
		}
	}
}

func TestConnError(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	_, err := New(sock).ListVMs(context.Background())
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Socket != sock {
		t.Fatalf("error %v, want *ConnError", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, sock) || !strings.Contains(msg, "QUBESD_SOCKET") || !strings.Contains(msg, "is qubesd running") ||
		strings.Contains(msg, "dial unix") {
		t.Errorf("message %q", msg)
	}
}

func TestSocketFromEnv(t *testing.T) {
	t.Setenv(SocketEnv, "")
	if got := SocketFromEnv(); got != DefaultSocket {
		t.Errorf("SocketFromEnv() = %q", got)
	}
	t.Setenv(SocketEnv, "/tmp/x.sock")
	if got := SocketFromEnv(); got != "/tmp/x.sock" {
		t.Errorf("SocketFromEnv() = %q", got)
	}
	if New("").Socket() != DefaultSocket {
		t.Error(`New("") does not use DefaultSocket`)
	}
}

// TestCancel checks that cancelling the context ends a call that the daemon
// never answers.
func TestCancel(t *testing.T) {
	block := make(chan struct{})
	s := newFakeServer(t, func(conn *net.UnixConn) {
		readRequest(conn)
		<-block // never answer
	})
	t.Cleanup(func() { close(block) }) // runs before the server's cleanup
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := New(s.path).ListVMs(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	// Already cancelled: no call at all.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := New(s.path).ListVMs(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

// TestSend checks that Send hands the reply over as it arrives.
func TestSend(t *testing.T) {
	next := make(chan struct{})
	s := newFakeServer(t, func(conn *net.UnixConn) {
		readRequest(conn)
		conn.Write([]byte("1\x00\x00connection-established\x00\x00"))
		select {
		case <-next:
		case <-time.After(5 * time.Second):
		}
		conn.Write([]byte("1\x00vm1\x00domain-start\x00\x00"))
	})
	r, err := New(s.path).Send(context.Background(), []byte("admin.Events+ dom0 name dom0\x00"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d := NewEventDecoder(r)
	if e, err := d.Next(); err != nil || e.Name != ConnectionEstablished {
		t.Fatalf("first event %+v, %v", e, err)
	}
	close(next)
	if e, err := d.Next(); err != nil || e.Name != "domain-start" || e.Subject != "vm1" {
		t.Fatalf("second event %+v, %v", e, err)
	}
	if _, err := d.Next(); err != io.EOF {
		t.Errorf("end: %v", err)
	}
}
