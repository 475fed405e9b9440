package admin

import (
	"context"
	"errors"
	"reflect"
	"strings"
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
		{func() error { return c.Suspend(ctx, "work") }, "admin.vm.Suspend+ dom0 name work\x00"},
		{func() error { return c.Resume(ctx, "work") }, "admin.vm.Resume+ dom0 name work\x00"},
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

func TestCurrentStateParse(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  VMState
		err   string // part of the error; "" for success
	}{
		{reply: "mem=409600 mem_static_max=4096000 cputime=1234 power_state=Running", want: VMState{
			PowerState: "Running", Mem: 409600, MemStaticMax: 4096000, CPUTime: 1234,
			Fields: map[string]string{"mem": "409600", "mem_static_max": "4096000", "cputime": "1234", "power_state": "Running"},
		}},
		// a key the client does not know is kept
		{reply: "mem=0 mem_static_max=0 cputime=0 power_state=Halted extra=1", want: VMState{
			PowerState: "Halted",
			Fields:     map[string]string{"mem": "0", "mem_static_max": "0", "cputime": "0", "power_state": "Halted", "extra": "1"},
		}},
		{reply: "", err: "no mem"},
		{reply: "mem=1 mem_static_max=1 cputime=1", err: "no power_state"},
		{reply: "mem=1 mem_static_max=1 cputime=1 power_state=", err: "no power_state"},
		{reply: "mem=lots mem_static_max=1 cputime=1 power_state=Running", err: `mem="lots" is not an integer`},
		{reply: "mem=1 mem_static_max=1 cputime=1.5 power_state=Running", err: `cputime="1.5" is not an integer`},
		{reply: "mem=1 mem_static_max=1 power_state=Running", err: "no cputime"},
		{reply: "mem=1 mem_static_max=1 cputime=1 power_state=Running garbage", err: `field "garbage" is not key=value`},
		{reply: "mem=1 mem=2 mem_static_max=1 cputime=1 power_state=Running", err: `key "mem" twice`},
	} {
		got, err := parseCurrentState([]byte(tc.reply))
		if tc.err == "" {
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseCurrentState(%q) = %+v, %v; want %+v", tc.reply, got, err, tc.want)
			}
			continue
		}
		// the error says what is wrong and names the reply
		if err == nil || !errors.Is(err, ErrMalformedReply) || !strings.Contains(err.Error(), tc.err) ||
			!strings.Contains(err.Error(), "reply \""+tc.reply+"\"") {
			t.Errorf("parseCurrentState(%q) error = %v; want one about %q naming the reply", tc.reply, err, tc.err)
		}
	}
}

// TestCurrentStateRecorded parses every CurrentState reply the reference
// daemon gave in the recorded transcripts.
func TestCurrentStateRecorded(t *testing.T) {
	n := 0
	for _, e := range loadTranscript(t, "public-n10-read.jsonl") {
		if e.Req.Method != "admin.vm.CurrentState" {
			continue
		}
		body, err := ParseReply(e.reply())
		if errors.Is(err, ErrEmptyReply) {
			continue // the reference's own failure on dom0, recorded as such
		}
		if err != nil {
			t.Fatalf("%s: %v", e.Req.Dest, err)
		}
		st, err := parseCurrentState(body)
		if err != nil || st.PowerState == "" {
			t.Errorf("%s: %+v, %v", e.Req.Dest, st, err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no CurrentState reply in the transcript")
	}
}

func TestCreateDisposable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dest  string
		opts  DisposableOptions
		reply string
		req   string
		want  string
		err   func(error) bool
	}{
		{name: "default template", dest: AdminVM, reply: "0\x00disp1234",
			req: "admin.vm.CreateDisposable+ dom0 name dom0\x00", want: "disp1234"},
		{name: "given template", dest: "fedora-dvm", reply: "0\x00disp42",
			req: "admin.vm.CreateDisposable+ dom0 name fedora-dvm\x00", want: "disp42"},
		{name: "uuid", dest: "fedora-dvm", opts: DisposableOptions{UUID: true}, reply: "0\x00uuid:6a5ad6b6-2b55-4c8e-9d51-7e3c1f0b9a11",
			req: "admin.vm.CreateDisposable+ dom0 name fedora-dvm\x00uuid", want: "uuid:6a5ad6b6-2b55-4c8e-9d51-7e3c1f0b9a11"},
		{name: "preload", dest: "fedora-dvm", opts: DisposableOptions{Preload: true}, reply: "0\x00",
			req: "admin.vm.CreateDisposable+preload dom0 name fedora-dvm\x00", want: ""},
		{name: "empty name", dest: "fedora-dvm", reply: "0\x00",
			req: "admin.vm.CreateDisposable+ dom0 name fedora-dvm\x00", err: func(err error) bool { return errors.Is(err, ErrMalformedReply) }},
		{name: "name where a uuid was asked", dest: "fedora-dvm", opts: DisposableOptions{UUID: true}, reply: "0\x00disp1",
			req: "admin.vm.CreateDisposable+ dom0 name fedora-dvm\x00uuid", err: func(err error) bool {
				return errors.Is(err, ErrMalformedReply) && strings.Contains(err.Error(), `"disp1"`)
			}},
		{name: "refused", dest: "work", reply: "2\x00QubesException\x00\x00Refusing to create DispVM out of this AppVM, because template_for_dispvms=False\x00",
			req: "admin.vm.CreateDisposable+ dom0 name work\x00", err: func(err error) bool { return IsType(err, TypeQubesException) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req string
			s := newFakeServer(t, replyWith(func(b []byte) []byte { req = string(b); return []byte(tc.reply) }))
			got, err := New(s.path).CreateDisposable(context.Background(), tc.dest, tc.opts)
			if req != tc.req {
				t.Errorf("request %q, want %q", req, tc.req)
			}
			if tc.err != nil {
				if !tc.err(err) {
					t.Errorf("CreateDisposable = %q, %v; want an error", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("CreateDisposable = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
