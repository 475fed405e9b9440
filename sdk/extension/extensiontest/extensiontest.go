// Package extensiontest helps test qubesd extensions: Host, an in-memory
// fake of the daemon that records the calls it gets; Connect, which runs
// an extension over the real protocol in-process, as the daemon would see
// it; and Check, which checks what an extension declares.
//
//	func TestHello(t *testing.T) {
//		host := extensiontest.NewHost()
//		host.AddQube("work", "AppVM", "Running")
//		ext := extensiontest.Connect(t, &Hello{}) // an *extension.Client
//		if err := ext.Configure(ctx, nil, host); err != nil { ... }
//		extensiontest.Check(t, ext)
//		_, err := ext.HandleEvent(ctx, extension.Event{DispatchID: 1, Subject: "work", Name: "domain-feature-set:hello"})
//		... host.CallsTo("AddTag") ...
//	}
//
// To test the plugin binary itself, build it and launch it with
// plugin.ClientConfig, as the ext-hello example's tests do.
package extensiontest

import (
	"context"
	"testing"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/qubesgo/qubesd/sdk"
	"github.com/qubesgo/qubesd/sdk/extension"
	"github.com/qubesgo/qubesd/sdk/plugin"
)

// Connect serves e in-process over a real gRPC connection with go-plugin's
// broker, exactly as extension.Serve does in a plugin process, and returns
// the daemon's side of it. Call Configure with a HostService (a Host from
// NewHost, say): the extension's Host calls then cross host.v1 to it. The
// connection is closed when the test ends.
func Connect(t testing.TB, e extension.Extension) *extension.Client {
	t.Helper()
	// Closing the client shuts the server down (go-plugin's controller);
	// stopping the server as well would race with that.
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{
		plugin.KindExtension: extension.NewGRPCPlugin(e),
	})
	raw, err := client.Dispense(plugin.KindExtension)
	if err != nil {
		client.Close()
		t.Fatalf("extensiontest: dispensing the extension: %v", err)
	}
	c := raw.(*extension.Client)
	t.Cleanup(func() {
		c.Close()
		client.Close()
	})
	return c
}

// Check checks what e declares, as the daemon does when it loads an
// extension: Info names it (and, through Connect or a plugin, reports the
// SDK's protocol version), every Subscription and MethodSpec is valid and
// method names are unique. Call it after Configure.
func Check(t testing.TB, e extension.Extension) {
	t.Helper()
	ctx := context.Background()
	info, err := e.Info(ctx)
	if err != nil {
		t.Errorf("Info: %v", err)
	} else {
		if info.Name == "" {
			t.Error("Info: no Name")
		}
		if _, remote := e.(*extension.Client); remote && info.ProtocolVersion != sdk.ProtocolVersion {
			t.Errorf("Info: protocol version %d, want %d", info.ProtocolVersion, sdk.ProtocolVersion)
		}
	}
	subs, err := e.Subscriptions(ctx)
	if err != nil {
		t.Errorf("Subscriptions: %v", err)
	}
	for _, s := range subs {
		if err := s.Validate(); err != nil {
			t.Errorf("Subscriptions: %v", err)
		}
	}
	methods, err := e.Methods(ctx)
	if err != nil {
		t.Errorf("Methods: %v", err)
	}
	seen := map[string]bool{}
	for _, m := range methods {
		if err := m.Validate(); err != nil {
			t.Errorf("Methods: %v", err)
		}
		if seen[m.Name] {
			t.Errorf("Methods: %q declared twice", m.Name)
		}
		seen[m.Name] = true
	}
}
