package admin

import (
	"context"
	"testing"
)

func TestLifecycleCalls(t *testing.T) {
	var got string
	s := newFakeServer(t, replyWith(func(req []byte) []byte {
		got = string(req)
		if got == "admin.vm.Start+ dom0 name halted\x00" {
			return []byte("2\x00QubesVMNotHaltedError\x00\x00Domain is running: 'halted'\x00")
		}
		return []byte("0\x00")
	}))
	c := New(s.path)
	ctx := context.Background()
	for _, tc := range []struct {
		call func() error
		req  string
	}{
		{func() error { return c.Start(ctx, "work") }, "admin.vm.Start+ dom0 name work\x00"},
		{func() error { return c.Shutdown(ctx, "work", ShutdownOptions{}) }, "admin.vm.Shutdown+ dom0 name work\x00"},
		{func() error { return c.Shutdown(ctx, "work", ShutdownOptions{Force: true}) }, "admin.vm.Shutdown+force dom0 name work\x00"},
		{func() error { return c.Shutdown(ctx, "work", ShutdownOptions{Wait: true}) }, "admin.vm.Shutdown+wait dom0 name work\x00"},
		{func() error { return c.Shutdown(ctx, "work", ShutdownOptions{Force: true, Wait: true}) }, "admin.vm.Shutdown+force+wait dom0 name work\x00"},
		{func() error { return c.Kill(ctx, "work") }, "admin.vm.Kill+ dom0 name work\x00"},
		{func() error { return c.Pause(ctx, "work") }, "admin.vm.Pause+ dom0 name work\x00"},
		{func() error { return c.Unpause(ctx, "work") }, "admin.vm.Unpause+ dom0 name work\x00"},
	} {
		got = ""
		if err := tc.call(); err != nil || got != tc.req {
			t.Errorf("request %q, %v; want %q", got, err, tc.req)
		}
	}
	err := c.Start(ctx, "halted")
	if !IsType(err, TypeVMNotHalted) || err.Error() != "Domain is running: 'halted'" {
		t.Errorf("Start error = %v", err)
	}
}
