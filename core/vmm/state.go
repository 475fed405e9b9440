package vmm

import "libvirt.org/go/libvirt"

// PowerState is a qube's power state as the Admin API reports it
// (spec/core-model.md §4.1).
type PowerState string

const (
	Halted    PowerState = "Halted"
	Transient PowerState = "Transient"
	Running   PowerState = "Running"
	Paused    PowerState = "Paused"
	Suspended PowerState = "Suspended"
	Halting   PowerState = "Halting"
	Dying     PowerState = "Dying"
	Crashed   PowerState = "Crashed"
	NA        PowerState = "NA" // documented by the reference, never returned
)

// powerState maps libvirt's view of a domain to a PowerState. An active
// domain that is running, blocked or in no particular state is Running:
// whether it is only Transient (not yet fully usable: qrexec not up) is the
// lifecycle's knowledge, not libvirt's.
func powerState(active bool, st libvirt.DomainState) PowerState {
	if !active {
		return Halted
	}
	switch st {
	case libvirt.DOMAIN_PAUSED:
		return Paused
	case libvirt.DOMAIN_SHUTDOWN:
		return Halting
	case libvirt.DOMAIN_SHUTOFF:
		return Dying
	case libvirt.DOMAIN_CRASHED:
		return Crashed
	case libvirt.DOMAIN_PMSUSPENDED:
		return Suspended
	}
	return Running
}

// DomainInfo is what libvirt says about one domain.
type DomainInfo struct {
	Name       string
	UUID       string
	ID         int // hypervisor id (xid on Xen); -1 when not running
	State      PowerState
	Active     bool // libvirt isActive(): is_running() in the reference
	Persistent bool // defined, not only created
}
