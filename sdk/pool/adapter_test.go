package pool

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/qubesgo/qubesd/sdk"
	"github.com/qubesgo/qubesd/sdk/plugin"
	storagev1 "github.com/qubesgo/qubesd/sdk/proto/storage/v1"
)

// mockDriver records every call and returns err (and canned values).
type mockDriver struct {
	mu    sync.Mutex
	calls []call
	err   error
}

type call struct {
	method string
	p      Pool
	v, src Volume
	arg    any
}

func (m *mockDriver) rec(c call) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, c)
	return m.err
}

func (m *mockDriver) last() call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[len(m.calls)-1]
}

var (
	mockInfo = Info{Name: "mock", Version: "1.2.3", Description: "a mock",
		Capabilities: Capabilities{Revisions: true, Shrink: true, FastClone: true, Import: true, Export: true, Ephemeral: true, OriginSnapshot: true},
		PoolConfig:   []ConfigKey{{Name: "dir", Description: "where", Required: true, Default: "/d"}}}
	mockUsage = Usage{Size: 100, Usage: 40, Details: map[string]uint64{"metadata_usage": 3}}
	mockState = VolumeState{VID: "a/b", Size: 7, Usage: 3, Dirty: true, Outdated: true, Path: "/dev/qubes/a-b"}
	mockDev   = BlockDevice{Path: "/dev/mock", RW: true, DevType: "cdrom"}
	mockRevs  = []Revision{{ID: "1-back", Time: time.Unix(100, 5)}, {ID: "2-back", Time: time.Unix(200, 0)}}
)

func (m *mockDriver) Info(context.Context) (Info, error) {
	return mockInfo, m.rec(call{method: "Info"})
}
func (m *mockDriver) Configure(_ context.Context, c []byte) error {
	return m.rec(call{method: "Configure", arg: string(c)})
}

// ValidateConfig refuses a config with the key "refuse"; it ignores err so
// that Check lets the other calls through.
func (m *mockDriver) ValidateConfig(_ context.Context, c map[string]string) error {
	if _, ok := c["refuse"]; ok {
		m.rec(call{method: "ValidateConfig", arg: c})
		return Errorf(ErrInvalid, "refused key %q", "refuse")
	}
	return nil
}
func (m *mockDriver) Open(_ context.Context, p Pool) error { return m.rec(call{method: "Open", p: p}) }
func (m *mockDriver) Setup(_ context.Context, p Pool) error {
	return m.rec(call{method: "Setup", p: p})
}
func (m *mockDriver) Destroy(_ context.Context, p Pool) error {
	return m.rec(call{method: "Destroy", p: p})
}
func (m *mockDriver) Usage(_ context.Context, p Pool) (Usage, error) {
	return mockUsage, m.rec(call{method: "Usage", p: p})
}
func (m *mockDriver) ListVolumes(_ context.Context, p Pool) ([]VolumeState, error) {
	return []VolumeState{mockState, {VID: "c"}}, m.rec(call{method: "ListVolumes", p: p})
}
func (m *mockDriver) Create(_ context.Context, p Pool, v Volume) error {
	return m.rec(call{method: "Create", p: p, v: v})
}
func (m *mockDriver) Remove(_ context.Context, p Pool, v Volume) error {
	return m.rec(call{method: "Remove", p: p, v: v})
}
func (m *mockDriver) Start(_ context.Context, p Pool, v Volume) (BlockDevice, error) {
	return mockDev, m.rec(call{method: "Start", p: p, v: v})
}
func (m *mockDriver) Stop(_ context.Context, p Pool, v Volume) error {
	return m.rec(call{method: "Stop", p: p, v: v})
}
func (m *mockDriver) Resize(_ context.Context, p Pool, v Volume, size uint64) error {
	return m.rec(call{method: "Resize", p: p, v: v, arg: size})
}
func (m *mockDriver) Revert(_ context.Context, p Pool, v Volume, rev string) error {
	return m.rec(call{method: "Revert", p: p, v: v, arg: rev})
}
func (m *mockDriver) ListRevisions(_ context.Context, p Pool, v Volume) ([]Revision, error) {
	return mockRevs, m.rec(call{method: "ListRevisions", p: p, v: v})
}
func (m *mockDriver) VolumeInfo(_ context.Context, p Pool, v Volume) (VolumeState, error) {
	return mockState, m.rec(call{method: "VolumeInfo", p: p, v: v})
}
func (m *mockDriver) Verify(_ context.Context, p Pool, v Volume) error {
	return m.rec(call{method: "Verify", p: p, v: v})
}
func (m *mockDriver) CloneFrom(_ context.Context, p Pool, v, src Volume) error {
	return m.rec(call{method: "CloneFrom", p: p, v: v, src: src})
}
func (m *mockDriver) ImportBegin(_ context.Context, p Pool, v Volume, size uint64) (string, error) {
	return "/import", m.rec(call{method: "ImportBegin", p: p, v: v, arg: size})
}
func (m *mockDriver) ImportEnd(_ context.Context, p Pool, v Volume, ok bool) error {
	return m.rec(call{method: "ImportEnd", p: p, v: v, arg: ok})
}
func (m *mockDriver) ExportBegin(_ context.Context, p Pool, v Volume) (string, error) {
	return "/export", m.rec(call{method: "ExportBegin", p: p, v: v})
}
func (m *mockDriver) ExportEnd(_ context.Context, p Pool, v Volume, path string) error {
	return m.rec(call{method: "ExportEnd", p: p, v: v, arg: path})
}

// overGRPC serves d through GRPCPlugin on an in-process gRPC connection and
// returns the dispensed client, as the daemon would get it.
func overGRPC(t *testing.T, d Driver) Driver {
	t.Helper()
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{plugin.KindPoolDriver: NewGRPCPlugin(d)})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(plugin.KindPoolDriver)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(Driver)
}

var (
	testPool = Pool{Name: "p", Config: map[string]string{"dir": "/x", "other": "y"}}
	testVol  = Volume{VID: "appvms/work/private", Name: "private", Size: 1 << 31, RW: true, SaveOnStop: true, RevisionsToKeep: -1, Ephemeral: true}
	testSnap = Volume{VID: "appvms/work/root", Name: "root", Size: 1 << 33, SnapOnStart: true, SourceVID: "vm-templates/f/root", RevisionsToKeep: 3}
)

// volumeCalls calls every volume method once.
var volumeCalls = map[string]func(d Driver) error{
	"Create": func(d Driver) error { return d.Create(context.Background(), testPool, testVol) },
	"Remove": func(d Driver) error { return d.Remove(context.Background(), testPool, testVol) },
	"Start":  func(d Driver) error { _, err := d.Start(context.Background(), testPool, testVol); return err },
	"Stop":   func(d Driver) error { return d.Stop(context.Background(), testPool, testVol) },
	"Resize": func(d Driver) error { return d.Resize(context.Background(), testPool, testVol, 1<<32) },
	"Revert": func(d Driver) error { return d.Revert(context.Background(), testPool, testVol, "1-back") },
	"ListRevisions": func(d Driver) error {
		_, err := d.ListRevisions(context.Background(), testPool, testVol)
		return err
	},
	"VolumeInfo": func(d Driver) error { _, err := d.VolumeInfo(context.Background(), testPool, testVol); return err },
	"Verify":     func(d Driver) error { return d.Verify(context.Background(), testPool, testVol) },
	"CloneFrom":  func(d Driver) error { return d.CloneFrom(context.Background(), testPool, testVol, testSnap) },
	"ImportBegin": func(d Driver) error {
		_, err := d.ImportBegin(context.Background(), testPool, testVol, 5)
		return err
	},
	"ImportEnd":   func(d Driver) error { return d.ImportEnd(context.Background(), testPool, testVol, true) },
	"ExportBegin": func(d Driver) error { _, err := d.ExportBegin(context.Background(), testPool, testVol); return err },
	"ExportEnd":   func(d Driver) error { return d.ExportEnd(context.Background(), testPool, testVol, "/export") },
	"Open":        func(d Driver) error { return d.Open(context.Background(), testPool) },
	"Setup":       func(d Driver) error { return d.Setup(context.Background(), testPool) },
	"Destroy":     func(d Driver) error { return d.Destroy(context.Background(), testPool) },
	"Usage":       func(d Driver) error { _, err := d.Usage(context.Background(), testPool); return err },
	"ListVolumes": func(d Driver) error { _, err := d.ListVolumes(context.Background(), testPool); return err },
	"Info":        func(d Driver) error { _, err := d.Info(context.Background()); return err },
	"Configure":   func(d Driver) error { return d.Configure(context.Background(), []byte(`{"a":1}`)) },
}

// TestAdapterCarriesRequests: the pool, the full volume spec and every
// argument reach the driver as sent.
func TestAdapterCarriesRequests(t *testing.T) {
	m := &mockDriver{}
	d := overGRPC(t, m)
	for name, fn := range volumeCalls {
		if err := fn(d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := m.last()
		if got.method != name {
			t.Fatalf("%s reached the driver as %s", name, got.method)
		}
		if got.p.Name != "" && !reflect.DeepEqual(got.p, testPool) {
			t.Errorf("%s: pool %+v, want %+v", name, got.p, testPool)
		}
		if got.v.VID != "" && got.v != testVol {
			t.Errorf("%s: volume %+v, want %+v", name, got.v, testVol)
		}
	}
	volumeCalls["Configure"](d)
	if c := m.last(); c.method != "Configure" || c.arg != `{"a":1}` {
		t.Errorf("Configure carried %v", c.arg)
	}
	volumeCalls["CloneFrom"](d)
	if c := m.last(); c.src != testSnap {
		t.Errorf("CloneFrom: source %+v, want %+v", c.src, testSnap)
	}
	for name, want := range map[string]any{"Resize": uint64(1 << 32), "Revert": "1-back", "ImportBegin": uint64(5), "ImportEnd": true, "ExportEnd": "/export"} {
		volumeCalls[name](d)
		if got := m.last().arg; got != want {
			t.Errorf("%s: argument %v, want %v", name, got, want)
		}
	}
}

// TestAdapterCarriesResults: what the driver returns reaches the daemon.
func TestAdapterCarriesResults(t *testing.T) {
	ctx := context.Background()
	d := overGRPC(t, &mockDriver{})
	info, err := d.Info(ctx)
	want := mockInfo
	want.ProtocolVersion = sdk.ProtocolVersion // filled in by the SDK
	if err != nil || !reflect.DeepEqual(info, want) {
		t.Errorf("Info: %+v, %v; want %+v", info, err, want)
	}
	if u, err := d.Usage(ctx, testPool); err != nil || !reflect.DeepEqual(u, mockUsage) {
		t.Errorf("Usage: %+v, %v", u, err)
	}
	if vols, err := d.ListVolumes(ctx, testPool); err != nil || !reflect.DeepEqual(vols, []VolumeState{mockState, {VID: "c"}}) {
		t.Errorf("ListVolumes: %+v, %v", vols, err)
	}
	if st, err := d.VolumeInfo(ctx, testPool, testVol); err != nil || st != mockState {
		t.Errorf("VolumeInfo: %+v, %v", st, err)
	}
	if bd, err := d.Start(ctx, testPool, testVol); err != nil || bd != mockDev {
		t.Errorf("Start: %+v, %v", bd, err)
	}
	revs, err := d.ListRevisions(ctx, testPool, testVol)
	if err != nil || len(revs) != 2 || revs[0].ID != "1-back" || !revs[0].Time.Equal(mockRevs[0].Time) || !revs[1].Time.Equal(mockRevs[1].Time) {
		t.Errorf("ListRevisions: %+v, %v", revs, err)
	}
	if p, err := d.ImportBegin(ctx, testPool, testVol, 1); err != nil || p != "/import" {
		t.Errorf("ImportBegin: %q, %v", p, err)
	}
	if p, err := d.ExportBegin(ctx, testPool, testVol); err != nil || p != "/export" {
		t.Errorf("ExportBegin: %q, %v", p, err)
	}
}

// optional are the calls whose Unimplemented the client tolerates.
var optional = map[string]bool{"Open": true, "Setup": true, "Destroy": true, "ExportEnd": true, "Configure": true}

// TestAdapterErrors: every error kind, from every call, crosses the wire
// both ways with its message.
func TestAdapterErrors(t *testing.T) {
	m := &mockDriver{}
	d := overGRPC(t, m)
	for _, k := range kinds {
		m.err = Errorf(k.err, "volume x: %s", k.code)
		for name, fn := range volumeCalls {
			if k.err == ErrUnimplemented && optional[name] {
				continue // see TestClientToleratesUnimplemented
			}
			err := fn(d)
			if !errors.Is(err, k.err) || err.Error() != m.err.Error() {
				t.Errorf("%s returning %v: the daemon got %v", name, m.err, err)
			}
		}
	}
	m.err = errors.New("disk on fire")
	if err := d.Create(context.Background(), testPool, testVol); err == nil || err.Error() != "disk on fire (Unknown)" {
		t.Errorf("an error of no kind came back as %v", err)
	}
	m.err = nil
	err := d.Create(context.Background(), Pool{Name: "p", Config: map[string]string{"refuse": ""}}, testVol)
	if !errors.Is(err, ErrInvalid) || err.Error() != `pool p: refused key "refuse"` {
		t.Errorf("a pool config the driver refuses: %v", err)
	}
	if err := d.Create(context.Background(), testPool, Volume{VID: "../x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a bad vid: %v", err)
	}
}

// TestClientToleratesUnimplemented: a plugin without the optional methods
// (a plugin from an older SDK, or in another language) still works.
func TestClientToleratesUnimplemented(t *testing.T) {
	conn, _ := goplugin.TestGRPCConn(t, func(s *grpc.Server) {
		storagev1.RegisterPoolDriverServer(s, storagev1.UnimplementedPoolDriverServer{})
	})
	t.Cleanup(func() { conn.Close() })
	d := NewClient(storagev1.NewPoolDriverClient(conn))
	ctx := context.Background()
	for name, err := range map[string]error{
		"Open":            d.Open(ctx, testPool),
		"Setup":           d.Setup(ctx, testPool),
		"Destroy":         d.Destroy(ctx, testPool),
		"ExportEnd":       d.ExportEnd(ctx, testPool, testVol, "/x"),
		"Configure(nil)":  d.Configure(ctx, nil),
		"Configure({})":   d.Configure(ctx, []byte("{}")),
		"Configure(  {})": d.Configure(ctx, []byte(" {} ")),
	} {
		if err != nil {
			t.Errorf("%s on a plugin without it: %v, want nil", name, err)
		}
	}
	if err := d.Configure(ctx, []byte(`{"a":1}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Configure with a config, on a plugin without Configure: %v, want ErrInvalid", err)
	}
	if err := d.Create(ctx, testPool, testVol); !errors.Is(err, ErrUnimplemented) {
		t.Errorf("Create on a plugin without it: %v, want ErrUnimplemented", err)
	}
}

// TestPluginSet: the plugin is served and dispensed under its kind.
func TestPluginSet(t *testing.T) {
	set := plugin.PluginSet(plugin.KindPoolDriver, NewGRPCPlugin(&mockDriver{}))
	if _, ok := set[plugin.KindPoolDriver].(*GRPCPlugin); !ok {
		t.Errorf("plugin set %v", set)
	}
}
