package vmm

import (
	"fmt"
	"sync"

	"libvirt.org/go/libvirt"
)

// EventKind is what happened to a domain.
type EventKind string

const (
	EventDefined     EventKind = "defined"
	EventUndefined   EventKind = "undefined"
	EventStarted     EventKind = "started"
	EventSuspended   EventKind = "suspended" // paused (libvirt SUSPENDED): → domain-paused
	EventResumed     EventKind = "resumed"   // unpaused (libvirt RESUMED): → domain-unpaused unless qubesd resumed it itself
	EventStopped     EventKind = "stopped"   // → domain-stopped then domain-shutdown
	EventShutdown    EventKind = "shutdown"  // the guest is shutting down; a stopped event follows
	EventPMSuspended EventKind = "pmsuspended"
	EventCrashed     EventKind = "crashed" // the guest crashed; with on_crash=destroy a stopped event follows
)

// StopReason says why a domain stopped (libvirt's STOPPED detail).
type StopReason string

const (
	StopShutdown     StopReason = "shutdown"  // the guest shut down
	StopDestroyed    StopReason = "destroyed" // killed by the host
	StopCrashed      StopReason = "crashed"
	StopMigrated     StopReason = "migrated"
	StopSaved        StopReason = "saved"
	StopFailed       StopReason = "failed" // the hypervisor failed
	StopFromSnapshot StopReason = "from-snapshot"
	StopRecreated    StopReason = "recreated"
	// StopLost: the domain was running when the connection dropped and was
	// no longer running after reconnecting; its stopped event was lost.
	StopLost    StopReason = "lost"
	StopUnknown StopReason = "unknown"
)

// Event is one translated libvirt domain lifecycle event.
type Event struct {
	Domain string // domain (qube) name
	UUID   string
	Kind   EventKind
	Reason StopReason // for EventStopped only
	Detail string     // libvirt's detail in words ("booted", "paused", "ioerror", "guest"...)
	// Synthetic: made by this package, not received from libvirt (a stop
	// noticed after a reconnect).
	Synthetic bool
}

func (e Event) String() string {
	s := fmt.Sprintf("%s %s", e.Domain, e.Kind)
	if e.Kind == EventStopped {
		s += " (" + string(e.Reason) + ")"
	} else if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.Synthetic {
		s += " [synthetic]"
	}
	return s
}

// rawEvent is a libvirt lifecycle callback's arguments, decoupled from cgo
// objects so the translator can be fed directly in tests.
type rawEvent struct {
	name, uuid string
	event      libvirt.DomainEventType
	detail     int
}

// translator turns raw events into Events and suppresses repeated stops: once
// a domain's stop was delivered, further stops are dropped until it starts
// again. It remembers which domains it believes active so that a reconnect
// can synthesise the stops it missed.
type translator struct {
	mu      sync.Mutex
	stopped map[string]bool // key → last delivered state was stopped; absent = unknown
	names   map[string]string
}

func newTranslator() *translator {
	return &translator{stopped: map[string]bool{}, names: map[string]string{}}
}

func key(name, uuid string) string {
	if uuid != "" {
		return uuid
	}
	return "name:" + name
}

// translate returns the Event for r, and false when it is to be dropped
// (a duplicate stop, or an event kind this package does not know).
func (t *translator) translate(r rawEvent) (Event, bool) {
	ev := Event{Domain: r.name, UUID: r.uuid}
	switch r.event {
	case libvirt.DOMAIN_EVENT_DEFINED:
		ev.Kind = EventDefined
	case libvirt.DOMAIN_EVENT_UNDEFINED:
		ev.Kind = EventUndefined
	case libvirt.DOMAIN_EVENT_STARTED:
		ev.Kind, ev.Detail = EventStarted, startedDetail(r.detail)
	case libvirt.DOMAIN_EVENT_SUSPENDED:
		ev.Kind, ev.Detail = EventSuspended, suspendedDetail(r.detail)
	case libvirt.DOMAIN_EVENT_RESUMED:
		ev.Kind, ev.Detail = EventResumed, resumedDetail(r.detail)
	case libvirt.DOMAIN_EVENT_STOPPED:
		ev.Kind, ev.Reason = EventStopped, stopReason(r.detail)
		ev.Detail = string(ev.Reason)
	case libvirt.DOMAIN_EVENT_SHUTDOWN:
		ev.Kind, ev.Detail = EventShutdown, shutdownDetail(r.detail)
	case libvirt.DOMAIN_EVENT_PMSUSPENDED:
		ev.Kind = EventPMSuspended
		if libvirt.DomainEventPMSuspendedDetailType(r.detail) == libvirt.DOMAIN_EVENT_PMSUSPENDED_DISK {
			ev.Detail = "disk"
		} else {
			ev.Detail = "memory"
		}
	case libvirt.DOMAIN_EVENT_CRASHED:
		ev.Kind, ev.Detail = EventCrashed, "panicked"
		if libvirt.DomainEventCrashedDetailType(r.detail) == libvirt.DOMAIN_EVENT_CRASHED_CRASHLOADED {
			ev.Detail = "crashloaded"
		}
	default:
		return ev, false
	}

	k := key(r.name, r.uuid)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.Kind {
	case EventStopped:
		if t.stopped[k] {
			return ev, false
		}
		t.stopped[k], t.names[k] = true, r.name
	case EventStarted, EventResumed, EventSuspended, EventPMSuspended:
		// only an active domain reports these: it runs (again)
		t.stopped[k], t.names[k] = false, r.name
	case EventUndefined:
		delete(t.stopped, k)
		delete(t.names, k)
	}
	return ev, true
}

// reconcile is called after every (re)connection with the domains libvirt
// reports active. Domains believed running that are no longer active get a
// synthetic stop (their event was lost while disconnected); active ones are
// remembered as running, so that a later stop is delivered once.
func (t *translator) reconcile(active []DomainInfo) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := make(map[string]bool, len(active))
	for _, d := range active {
		k := key(d.Name, d.UUID)
		now[k] = true
		t.stopped[k], t.names[k] = false, d.Name
	}
	var out []Event
	for k, stopped := range t.stopped {
		if stopped || now[k] {
			continue
		}
		t.stopped[k] = true
		uuid := k
		if len(k) > 5 && k[:5] == "name:" {
			uuid = ""
		}
		out = append(out, Event{Domain: t.names[k], UUID: uuid, Kind: EventStopped, Reason: StopLost, Detail: string(StopLost), Synthetic: true})
	}
	return out
}

func stopReason(d int) StopReason {
	switch libvirt.DomainEventStoppedDetailType(d) {
	case libvirt.DOMAIN_EVENT_STOPPED_SHUTDOWN:
		return StopShutdown
	case libvirt.DOMAIN_EVENT_STOPPED_DESTROYED:
		return StopDestroyed
	case libvirt.DOMAIN_EVENT_STOPPED_CRASHED:
		return StopCrashed
	case libvirt.DOMAIN_EVENT_STOPPED_MIGRATED:
		return StopMigrated
	case libvirt.DOMAIN_EVENT_STOPPED_SAVED:
		return StopSaved
	case libvirt.DOMAIN_EVENT_STOPPED_FAILED:
		return StopFailed
	case libvirt.DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT:
		return StopFromSnapshot
	case libvirt.DOMAIN_EVENT_STOPPED_RECREATED:
		return StopRecreated
	}
	return StopUnknown
}

func startedDetail(d int) string {
	switch libvirt.DomainEventStartedDetailType(d) {
	case libvirt.DOMAIN_EVENT_STARTED_BOOTED:
		return "booted"
	case libvirt.DOMAIN_EVENT_STARTED_MIGRATED:
		return "migrated"
	case libvirt.DOMAIN_EVENT_STARTED_RESTORED:
		return "restored"
	case libvirt.DOMAIN_EVENT_STARTED_FROM_SNAPSHOT:
		return "from-snapshot"
	case libvirt.DOMAIN_EVENT_STARTED_WAKEUP:
		return "wakeup"
	case libvirt.DOMAIN_EVENT_STARTED_RECREATED:
		return "recreated"
	}
	return ""
}

func suspendedDetail(d int) string {
	switch libvirt.DomainEventSuspendedDetailType(d) {
	case libvirt.DOMAIN_EVENT_SUSPENDED_PAUSED:
		return "paused"
	case libvirt.DOMAIN_EVENT_SUSPENDED_MIGRATED:
		return "migrated"
	case libvirt.DOMAIN_EVENT_SUSPENDED_IOERROR:
		return "ioerror"
	case libvirt.DOMAIN_EVENT_SUSPENDED_WATCHDOG:
		return "watchdog"
	case libvirt.DOMAIN_EVENT_SUSPENDED_RESTORED:
		return "restored"
	case libvirt.DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT:
		return "from-snapshot"
	case libvirt.DOMAIN_EVENT_SUSPENDED_API_ERROR:
		return "api-error"
	case libvirt.DOMAIN_EVENT_SUSPENDED_GUEST_SHUTDOWN:
		return "guest-shutdown"
	}
	return ""
}

func resumedDetail(d int) string {
	switch libvirt.DomainEventResumedDetailType(d) {
	case libvirt.DOMAIN_EVENT_RESUMED_UNPAUSED:
		return "unpaused"
	case libvirt.DOMAIN_EVENT_RESUMED_MIGRATED:
		return "migrated"
	case libvirt.DOMAIN_EVENT_RESUMED_FROM_SNAPSHOT:
		return "from-snapshot"
	}
	return ""
}

func shutdownDetail(d int) string {
	switch libvirt.DomainEventShutdownDetailType(d) {
	case libvirt.DOMAIN_EVENT_SHUTDOWN_GUEST:
		return "guest"
	case libvirt.DOMAIN_EVENT_SHUTDOWN_HOST:
		return "host"
	}
	return "finished"
}
