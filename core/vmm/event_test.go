package vmm

import (
	"testing"

	"libvirt.org/go/libvirt"
)

func TestTranslate(t *testing.T) {
	tests := []struct {
		name   string
		ev     libvirt.DomainEventType
		detail int
		kind   EventKind
		reason StopReason
		desc   string
	}{
		{"started", libvirt.DOMAIN_EVENT_STARTED, int(libvirt.DOMAIN_EVENT_STARTED_BOOTED), EventStarted, "", "booted"},
		{"suspended", libvirt.DOMAIN_EVENT_SUSPENDED, int(libvirt.DOMAIN_EVENT_SUSPENDED_PAUSED), EventSuspended, "", "paused"},
		{"suspended ioerror", libvirt.DOMAIN_EVENT_SUSPENDED, int(libvirt.DOMAIN_EVENT_SUSPENDED_IOERROR), EventSuspended, "", "ioerror"},
		{"resumed", libvirt.DOMAIN_EVENT_RESUMED, int(libvirt.DOMAIN_EVENT_RESUMED_UNPAUSED), EventResumed, "", "unpaused"},
		{"shutdown", libvirt.DOMAIN_EVENT_SHUTDOWN, int(libvirt.DOMAIN_EVENT_SHUTDOWN_GUEST), EventShutdown, "", "guest"},
		{"stopped shutdown", libvirt.DOMAIN_EVENT_STOPPED, int(libvirt.DOMAIN_EVENT_STOPPED_SHUTDOWN), EventStopped, StopShutdown, "shutdown"},
		{"stopped destroyed", libvirt.DOMAIN_EVENT_STOPPED, int(libvirt.DOMAIN_EVENT_STOPPED_DESTROYED), EventStopped, StopDestroyed, "destroyed"},
		{"stopped crashed", libvirt.DOMAIN_EVENT_STOPPED, int(libvirt.DOMAIN_EVENT_STOPPED_CRASHED), EventStopped, StopCrashed, "crashed"},
		{"stopped failed", libvirt.DOMAIN_EVENT_STOPPED, int(libvirt.DOMAIN_EVENT_STOPPED_FAILED), EventStopped, StopFailed, "failed"},
		{"stopped unknown detail", libvirt.DOMAIN_EVENT_STOPPED, 99, EventStopped, StopUnknown, "unknown"},
		{"pmsuspended", libvirt.DOMAIN_EVENT_PMSUSPENDED, int(libvirt.DOMAIN_EVENT_PMSUSPENDED_MEMORY), EventPMSuspended, "", "memory"},
		{"crashed", libvirt.DOMAIN_EVENT_CRASHED, int(libvirt.DOMAIN_EVENT_CRASHED_PANICKED), EventCrashed, "", "panicked"},
		{"defined", libvirt.DOMAIN_EVENT_DEFINED, 0, EventDefined, "", ""},
		{"undefined", libvirt.DOMAIN_EVENT_UNDEFINED, 0, EventUndefined, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, ok := newTranslator().translate(rawEvent{name: "work", uuid: "u-1", event: tc.ev, detail: tc.detail})
			if !ok {
				t.Fatal("dropped")
			}
			want := Event{Domain: "work", UUID: "u-1", Kind: tc.kind, Reason: tc.reason, Detail: tc.desc}
			if ev != want {
				t.Errorf("got %+v, want %+v", ev, want)
			}
		})
	}
	if _, ok := newTranslator().translate(rawEvent{name: "work", event: 1000}); ok {
		t.Error("an unknown event type was delivered")
	}
}

func TestStoppedDeduplicated(t *testing.T) {
	started := rawEvent{name: "work", uuid: "u-1", event: libvirt.DOMAIN_EVENT_STARTED}
	stopped := rawEvent{name: "work", uuid: "u-1", event: libvirt.DOMAIN_EVENT_STOPPED, detail: int(libvirt.DOMAIN_EVENT_STOPPED_DESTROYED)}
	other := rawEvent{name: "other", uuid: "u-2", event: libvirt.DOMAIN_EVENT_STOPPED}
	undefined := rawEvent{name: "work", uuid: "u-1", event: libvirt.DOMAIN_EVENT_UNDEFINED}
	steps := []struct {
		in      rawEvent
		deliver bool
	}{
		{stopped, true}, // first stop of an unknown domain: delivered
		{stopped, false},
		{other, true}, // per domain
		{started, true},
		{stopped, true},
		{stopped, false},
		{stopped, false},
		{undefined, true},
		{started, true},
		{stopped, true},
	}
	tr := newTranslator()
	for i, s := range steps {
		if _, ok := tr.translate(s.in); ok != s.deliver {
			t.Errorf("step %d (%s %d): delivered = %v, want %v", i, s.in.name, s.in.event, ok, s.deliver)
		}
	}
}

func TestReconcileSynthesisesLostStops(t *testing.T) {
	tr := newTranslator()
	for _, n := range []string{"a", "b", "c"} {
		tr.translate(rawEvent{name: n, uuid: "u-" + n, event: libvirt.DOMAIN_EVENT_STARTED})
	}
	tr.translate(rawEvent{name: "c", uuid: "u-c", event: libvirt.DOMAIN_EVENT_STOPPED})
	// after a reconnect only b runs, and d (started elsewhere) too
	evs := tr.reconcile([]DomainInfo{{Name: "b", UUID: "u-b", Active: true}, {Name: "d", UUID: "u-d", Active: true}})
	if len(evs) != 1 || evs[0].Domain != "a" || evs[0].Kind != EventStopped || evs[0].Reason != StopLost || !evs[0].Synthetic || evs[0].UUID != "u-a" {
		t.Fatalf("reconcile = %+v, want one synthetic lost stop of a", evs)
	}
	// the real stop of a arriving late is a duplicate now
	if _, ok := tr.translate(rawEvent{name: "a", uuid: "u-a", event: libvirt.DOMAIN_EVENT_STOPPED}); ok {
		t.Error("late stop after a synthetic one was delivered")
	}
	// d is known running now: its stop is delivered once
	if _, ok := tr.translate(rawEvent{name: "d", uuid: "u-d", event: libvirt.DOMAIN_EVENT_STOPPED}); !ok {
		t.Error("stop of an adopted domain was dropped")
	}
	if evs := tr.reconcile(nil); len(evs) != 1 || evs[0].Domain != "b" {
		t.Errorf("second reconcile = %+v, want b's stop", evs)
	}
}

func TestPowerState(t *testing.T) {
	tests := []struct {
		active bool
		st     libvirt.DomainState
		want   PowerState
	}{
		{false, libvirt.DOMAIN_SHUTOFF, Halted},
		{false, libvirt.DOMAIN_RUNNING, Halted},
		{true, libvirt.DOMAIN_RUNNING, Running},
		{true, libvirt.DOMAIN_BLOCKED, Running},
		{true, libvirt.DOMAIN_NOSTATE, Running},
		{true, libvirt.DOMAIN_PAUSED, Paused},
		{true, libvirt.DOMAIN_SHUTDOWN, Halting},
		{true, libvirt.DOMAIN_SHUTOFF, Dying},
		{true, libvirt.DOMAIN_CRASHED, Crashed},
		{true, libvirt.DOMAIN_PMSUSPENDED, Suspended},
	}
	for _, tc := range tests {
		if got := powerState(tc.active, tc.st); got != tc.want {
			t.Errorf("powerState(%v, %d) = %s, want %s", tc.active, tc.st, got, tc.want)
		}
	}
}
