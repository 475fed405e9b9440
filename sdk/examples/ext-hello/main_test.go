package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/qubesgo/qubesd/sdk"
	"github.com/qubesgo/qubesd/sdk/extension"
	"github.com/qubesgo/qubesd/sdk/extension/extensiontest"
	"github.com/qubesgo/qubesd/sdk/plugin"
)

// fakeHost is the daemon of these tests: dom0, "work" and "other".
func fakeHost() *extensiontest.Host {
	h := extensiontest.NewHost()
	h.AddQube("work", "AppVM", "Running")
	h.AddQube("other", "AppVM", "Halted")
	return h
}

// TestInProcess runs the extension over the real protocol, in-process.
func TestInProcess(t *testing.T) {
	exercise(t, extensiontest.Connect(t, &Hello{}))
}

// TestPluginBinary builds this extension, launches it as qubesd does
// (go-plugin, the shared handshake, AutoMTLS, gRPC, the broker for the
// host service) and runs the same checks against the plugin process; then
// it checks that the process goes away with Kill.
func TestPluginBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and launches the plugin binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipped: no go tool in PATH to build the plugin with")
	}
	bin := filepath.Join(t.TempDir(), "qubesd-ext-hello")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cfg := plugin.ClientConfig(plugin.KindExtension, extension.NewGRPCPlugin(nil), exec.Command(bin))
	cfg.Managed = true
	cfg.StartTimeout = 30 * time.Second
	cfg.UnixSocketConfig = &goplugin.UnixSocketConfig{TempDir: t.TempDir()}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "ext-hello", Level: hclog.Warn, Output: os.Stderr})
	client := goplugin.NewClient(cfg)
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("starting the plugin: %v", err)
	}
	pid, _ := strconv.Atoi(client.ID())
	if v := client.NegotiatedVersion(); v != sdk.ProtocolVersion {
		t.Errorf("negotiated protocol version %d, want %d", v, sdk.ProtocolVersion)
	}
	raw, err := rpc.Dispense(plugin.KindExtension)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	ext, ok := raw.(*extension.Client)
	if !ok {
		t.Fatalf("Dispense returned %T, not an *extension.Client", raw)
	}
	defer ext.Close()

	exercise(t, ext)

	// The plugin dies with Kill, leaves no process behind, and a call
	// made afterwards says the extension is unavailable.
	client.Kill()
	if !client.Exited() {
		t.Error("plugin not exited after Kill")
	}
	if pid > 0 {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("plugin process %d still there after Kill (signal 0: %v)", pid, err)
		}
	}
	if _, err := ext.Info(context.Background()); !errors.Is(err, extension.ErrUnavailable) {
		t.Errorf("call after the plugin exited: %v, want an error of kind ErrUnavailable", err)
	}
}

// exercise runs the daemon's side of the protocol against ext-hello: ext
// is what the daemon holds (in-process or a plugin process).
func exercise(t *testing.T, ext *extension.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host := fakeHost()

	info, err := ext.Info(ctx)
	if err != nil || info.Name != "hello" || info.ProtocolVersion != sdk.ProtocolVersion {
		t.Fatalf("Info: %+v, %v", info, err)
	}

	// A refused config, then a good one. Configure reaches the host over
	// the broker: the extension lists the qubes, outside any dispatch.
	if err := ext.Configure(ctx, []byte(`{"tagg":"x"}`), host); !errors.Is(err, extension.ErrInvalid) || !strings.Contains(err.Error(), "tagg") {
		t.Errorf("Configure with an unknown key: %v, want ErrInvalid naming it", err)
	}
	if err := ext.Configure(ctx, []byte(`{"tag":"bad tag"}`), host); !errors.Is(err, extension.ErrInvalid) {
		t.Errorf("Configure with a bad tag: %v", err)
	}
	if err := ext.Configure(ctx, []byte(`{"tag":"hello-seen"}`), host); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if calls := host.CallsTo("ListQubes"); len(calls) != 1 || calls[0].DispatchID != 0 {
		t.Errorf("ListQubes calls during Configure: %+v", calls)
	}
	extensiontest.Check(t, ext)

	subs, err := ext.Subscriptions(ctx)
	want := []extension.Subscription{
		{Pattern: "domain-feature-set:*", Mode: extension.Sync, Timeout: 5 * time.Second},
		{Pattern: "domain-feature-pre-set:forbidden", Mode: extension.PreVeto, Timeout: 5 * time.Second},
	}
	if err != nil || !reflect.DeepEqual(subs, want) {
		t.Errorf("Subscriptions: %+v, %v", subs, err)
	}

	// Sync: the feature "hello" set on work → the tag, through the Host,
	// with the event's dispatch id.
	kwargs := []extension.KV{{Key: "feature", Value: "hello"}, {Key: "value", Value: "1"}, {Key: "oldvalue", Value: nil}}
	if _, err := ext.HandleEvent(ctx, extension.Event{DispatchID: 41, Subject: "work", Name: "domain-feature-set:hello", Kwargs: kwargs}); err != nil {
		t.Fatalf("HandleEvent domain-feature-set:hello: %v", err)
	}
	tags := host.CallsTo("AddTag")
	if len(tags) != 1 || tags[0].DispatchID != 41 || tags[0].Subject != "work" || tags[0].Args[0] != "hello-seen" {
		t.Errorf("AddTag calls: %+v", tags)
	}
	if got := host.Tags("work"); !reflect.DeepEqual(got, []string{"hello-seen"}) {
		t.Errorf("work's tags: %v", got)
	}
	// Another feature: nothing.
	if _, err := ext.HandleEvent(ctx, extension.Event{DispatchID: 42, Subject: "work", Name: "domain-feature-set:other"}); err != nil {
		t.Errorf("HandleEvent domain-feature-set:other: %v", err)
	}
	if n := len(host.CallsTo("AddTag")); n != 1 {
		t.Errorf("%d AddTag calls after an unrelated feature", n)
	}

	// PreVeto: the feature "forbidden" is refused, with a message.
	_, err = ext.HandleEvent(ctx, extension.Event{DispatchID: 43, Subject: "work", Name: "domain-feature-pre-set:forbidden",
		Kwargs: []extension.KV{{Key: "feature", Value: "forbidden"}, {Key: "value", Value: "1"}}})
	typ, msg := extension.ExceptionOf(err)
	if !errors.Is(err, extension.ErrVeto) || typ != "QubesException" ||
		msg != "the feature 'forbidden' may not be set on work (refused by the hello extension)" {
		t.Errorf("veto: %v (%s %q)", err, typ, msg)
	}

	// The Admin API method.
	methods, err := ext.Methods(ctx)
	if err != nil || len(methods) != 1 || methods[0].Name != "admin.vm.hello.Get" || methods[0].Write {
		t.Errorf("Methods: %+v, %v", methods, err)
	}
	body, err := ext.CallMethod(ctx, extension.Call{DispatchID: 44, Method: "admin.vm.hello.Get", Src: "dom0", Dest: "work"})
	if err != nil || string(body) != "hello work" {
		t.Errorf("admin.vm.hello.Get: %q, %v", body, err)
	}
	_, err = ext.CallMethod(ctx, extension.Call{DispatchID: 45, Method: "admin.vm.hello.Get", Src: "dom0", Dest: "dom0"})
	if typ, msg := extension.ExceptionOf(err); typ != "ProtocolError" || msg != "expected destination to not be AdminVM" {
		t.Errorf("admin.vm.hello.Get on dom0: %s %q", typ, msg)
	}

	// Re-entrancy: while the daemon serves the extension's AddTag for
	// work, it fires the same event on another qube, delivered to the same
	// extension, whose handler calls the Host again. Both complete.
	host.Hook = func(ctx context.Context, c extensiontest.HostCall) error {
		if c.Method == "AddTag" && c.Subject == "work" && c.DispatchID == 100 {
			_, err := ext.HandleEvent(ctx, extension.Event{DispatchID: 101, Subject: "other", Name: "domain-feature-set:hello"})
			return err
		}
		return nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := ext.HandleEvent(ctx, extension.Event{DispatchID: 100, Subject: "work", Name: "domain-feature-set:hello"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("nested events: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("deadlock: an event nested in a Host call did not complete in 15 s")
	}
	var got []string
	for _, c := range host.CallsTo("AddTag")[1:] {
		got = append(got, c.Subject+"/"+strconv.FormatUint(c.DispatchID, 10))
	}
	if want := []string{"other/101", "work/100"}; !reflect.DeepEqual(got, want) {
		t.Errorf("AddTag calls of the nested events: %v, want %v", got, want)
	}
	if got := host.Tags("other"); !reflect.DeepEqual(got, []string{"hello-seen"}) {
		t.Errorf("other's tags: %v", got)
	}
}
