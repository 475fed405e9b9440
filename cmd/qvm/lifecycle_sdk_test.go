package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/daemon/daemontest"
	"github.com/qubesgo/qubesd/sdk/admin"
)

// TestSDKLifecycleRealDaemon runs the SDK's lifecycle calls the CLI uses —
// CurrentState, Suspend, Resume, CreateDisposable, WatchStats — against a
// real qubesd (in this process, libvirt's test driver): the client's strict
// parsing meets the daemon's replies.
func TestSDKLifecycleRealDaemon(t *testing.T) {
	d := daemontest.Start(t)
	c := admin.New(d.Config.Daemon.SocketPath())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// names are unique across tests: the test driver is shared by the process
	const vm = "sdklc"
	if err := c.Create(ctx, "StandaloneVM", "", vm, "red", admin.KV{Key: "kernel"}, admin.KV{Key: "netvm"}); err != nil {
		t.Fatal(err)
	}
	state := func(want string) admin.VMState {
		t.Helper()
		st, err := c.CurrentState(ctx, vm)
		if err != nil || st.PowerState != want {
			t.Fatalf("CurrentState = %+v, %v; want %s", st, err, want)
		}
		return st
	}
	state("Halted")
	if err := c.Suspend(ctx, vm); !admin.IsType(err, admin.TypeVMNotRunning) {
		t.Errorf("Suspend of a halted qube = %v, want %s", err, admin.TypeVMNotRunning)
	}
	if err := c.Start(ctx, vm); err != nil {
		t.Fatal(err)
	}
	defer func() { // the test driver's domain goes with the qube
		_ = c.Kill(context.Background(), vm)
		if err := c.Remove(context.Background(), vm); err != nil {
			t.Error(err)
		}
	}()
	if st := state("Running"); st.Mem <= 0 || st.MemStaticMax < st.Mem {
		t.Errorf("CurrentState of a running qube: %+v", st)
	}

	// the test driver cannot suspend a guest: Suspend pauses it, Resume
	// unpauses it
	if err := c.Suspend(ctx, vm); err != nil {
		t.Fatal(err)
	}
	state("Paused")
	if err := c.Resume(ctx, vm); err != nil {
		t.Fatal(err)
	}
	state("Running")

	// statistics of the one qube, then of all: the first batch comes at
	// once
	stop := errors.New("seen")
	for _, dest := range []string{vm, admin.AdminVM} {
		err := c.WatchStats(ctx, dest, func(s admin.QubeStats) error {
			if s.Qube != vm {
				return nil
			}
			if s.MemoryKB <= 0 || s.OnlineVCPUs <= 0 {
				t.Errorf("stats of %s: %+v", vm, s)
			}
			return stop
		})
		if err != stop {
			t.Errorf("WatchStats(%s) = %v, want the stats of %s", dest, err, vm)
		}
	}

	// a disposable from a disposable template: its name, or its UUID
	const dvm = "sdklc-dvm"
	if err := c.Create(ctx, "AppVM", "debian-12-xfce", dvm, "red", admin.KV{Key: "template_for_dispvms", Value: "True"}); err != nil {
		t.Fatal(err)
	}
	name, err := c.CreateDisposable(ctx, dvm, admin.DisposableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.VM(ctx, name)
	if err != nil || info.Class != "DispVM" || info.State != "Halted" {
		t.Errorf("the new disposable %q: %+v, %v", name, info, err)
	}
	ref, err := c.CreateDisposable(ctx, dvm, admin.DisposableOptions{UUID: true})
	if err != nil || !strings.HasPrefix(ref, "uuid:") {
		t.Fatalf("CreateDisposable with UUID = %q, %v", ref, err)
	}
	if _, err := c.CreateDisposable(ctx, vm, admin.DisposableOptions{}); err == nil {
		t.Errorf("CreateDisposable from %s, not a disposable template, succeeded", vm)
	}
	vms, err := c.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range vms {
		if "uuid:"+v.UUID == ref {
			found = v.Class == "DispVM"
			if err := c.Remove(ctx, v.Name); err != nil {
				t.Error(err)
			}
		}
	}
	if !found {
		t.Errorf("no DispVM with %s in the list", ref)
	}
	for _, n := range []string{name, dvm} {
		if err := c.Remove(ctx, n); err != nil {
			t.Error(err)
		}
	}
}
