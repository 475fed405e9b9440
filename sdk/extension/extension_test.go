package extension

import (
	"errors"
	"testing"
	"time"
)

func TestSubscriptionValidate(t *testing.T) {
	for _, ok := range []Subscription{
		{Pattern: "domain-pre-start", Mode: PreVeto},
		{Pattern: "domain-feature-set:*", Mode: Sync, Timeout: time.Second},
		{Pattern: "property-set:netvm", Mode: Notify},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, bad := range []Subscription{
		{Pattern: "", Mode: Sync},
		{Pattern: "*", Mode: Sync},
		{Pattern: "a*b", Mode: Sync},
		{Pattern: "a b", Mode: Sync},
		{Pattern: "x", Mode: 0},
		{Pattern: "x", Mode: 4},
		{Pattern: "x", Mode: Sync, Timeout: -1},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v accepted: %v", bad, err)
		}
	}
}

func TestSubscriptionMatches(t *testing.T) {
	s := Subscription{Pattern: "domain-feature-set:*"}
	if !s.Matches("domain-feature-set:hello") || !s.Matches("domain-feature-set:") || s.Matches("domain-feature-pre-set:hello") {
		t.Error("prefix pattern")
	}
	s = Subscription{Pattern: "domain-start"}
	if !s.Matches("domain-start") || s.Matches("domain-start-failed") {
		t.Error("exact pattern")
	}
}

func TestMethodSpecValidate(t *testing.T) {
	for _, ok := range []string{"admin.vm.hello.Get", "admin.vm.device.pci-x.Attach", "admin.X"} {
		if err := (MethodSpec{Name: ok}).Validate(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "admin.", "vm.hello.Get", "admin..x", "admin.x.", "admin.x+y", "admin.x y", "admin.é"} {
		if err := (MethodSpec{Name: bad}).Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
	if err := (MethodSpec{Name: "admin.x", Dest: 7}).Validate(); err == nil {
		t.Error("bad Dest accepted")
	}
	if err := validateMethods([]MethodSpec{{Name: "admin.a"}, {Name: "admin.a"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate accepted: %v", err)
	}
}

func TestCheckCall(t *testing.T) {
	spec := MethodSpec{Name: "admin.x", Dest: DestVM, Arg: Required, Payload: Forbidden}
	for _, c := range []struct {
		call Call
		msg  string
	}{
		{Call{Dest: "work", Arg: "a"}, ""},
		{Call{Dest: "work", Arg: "a", Payload: []byte("p")}, "unexpected payload"},
		{Call{Dest: "work"}, "expected an argument"},
		{Call{Dest: "dom0", Arg: "a"}, "expected destination to not be AdminVM"},
	} {
		err := spec.CheckCall(c.call)
		if c.msg == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.call, err)
			}
			continue
		}
		if typ, msg := ExceptionOf(err); typ != TypeProtocolError || msg != c.msg {
			t.Errorf("%+v: %s %q, want ProtocolError %q", c.call, typ, msg, c.msg)
		}
	}
	spec = MethodSpec{Name: "admin.y", Dest: DestAdminVM, Arg: Forbidden, Payload: Required}
	if _, msg := ExceptionOf(spec.CheckCall(Call{Dest: "dom0"})); msg != "expected payload" {
		t.Errorf("missing payload: %q", msg)
	}
	if _, msg := ExceptionOf(spec.CheckCall(Call{Dest: "dom0", Arg: "a", Payload: []byte("p")})); msg != "unexpected argument" {
		t.Errorf("unexpected arg: %q", msg)
	}
	if _, msg := ExceptionOf(spec.CheckCall(Call{Dest: "work", Payload: []byte("p")})); msg != "expected destination to be AdminVM" {
		t.Errorf("dest: %q", msg)
	}
}

func TestDispatchID(t *testing.T) {
	for _, id := range []uint64{0, 1, 1<<64 - 1} {
		back, err := parseDispatchID(formatDispatchID(id))
		if err != nil || back != id {
			t.Errorf("%d came back as %d, %v", id, back, err)
		}
	}
	if formatDispatchID(0) != "" {
		t.Error("0 is not sent as \"\"")
	}
	if _, err := parseDispatchID("abc"); !errors.Is(err, ErrInvalid) {
		t.Errorf("malformed id: %v", err)
	}
}

func TestDurationToMs(t *testing.T) {
	for d, want := range map[time.Duration]uint32{0: 0, -time.Second: 0, time.Microsecond: 1, 1500 * time.Microsecond: 2, 3 * time.Second: 3000, 2000 * time.Hour: 1<<32 - 1, 1000 * time.Hour: 3600000000} {
		if got := durationToMs(d); got != want {
			t.Errorf("durationToMs(%v) = %d, want %d", d, got, want)
		}
	}
}
