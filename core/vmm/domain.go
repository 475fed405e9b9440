package vmm

import (
	"encoding/xml"
	"errors"
	"fmt"

	"libvirt.org/go/libvirt"
)

// The domain operations the lifecycle needs. Each names the domain it acts
// on (qube name = libvirt domain name); errors are *Error, matched against
// the sentinels with errors.Is.

// Define defines (or redefines) a domain from its XML. name is the domain's
// name in xml, for error messages and a consistency check.
func (c *Conn) Define(name, xml string) error {
	return c.withConn("define", name, func(lc *libvirt.Connect) error {
		d, err := lc.DomainDefineXML(xml)
		if err != nil {
			return err
		}
		defer d.Free()
		if got, err := d.GetName(); err == nil && got != name {
			return fmt.Errorf("the XML defines domain %q, not %q", got, name)
		}
		return nil
	})
}

// CreatePaused starts a defined domain paused (VIR_DOMAIN_START_PAUSED), so
// that qubesd can fill its configuration before its CPUs run; Resume lets it
// go. A driver that refuses the flag (the test driver) gets create then
// suspend: the same events (started, then suspended) and the same state.
func (c *Conn) CreatePaused(name string) error {
	return c.withDomain("start", name, func(d *libvirt.Domain) error {
		err := d.CreateWithFlags(libvirt.DOMAIN_START_PAUSED)
		if err == nil || !unsupportedFlags(err) {
			return err
		}
		if err := d.Create(); err != nil {
			return err
		}
		if err := d.Suspend(); err != nil {
			_ = d.Destroy()
			return fmt.Errorf("pausing after start (the driver has no paused start): %w", err)
		}
		return nil
	})
}

// Resume unpauses a paused domain (libvirt resume).
func (c *Conn) Resume(name string) error {
	return c.withDomain("resume", name, (*libvirt.Domain).Resume)
}

// Pause pauses a running domain (libvirt suspend).
func (c *Conn) Pause(name string) error {
	return c.withDomain("pause", name, (*libvirt.Domain).Suspend)
}

// Shutdown asks the guest to shut down; the stop arrives later as an event.
func (c *Conn) Shutdown(name string) error {
	return c.withDomain("shutdown", name, (*libvirt.Domain).Shutdown)
}

// Destroy kills the domain at once. On a domain that is not running the
// error matches ErrInvalidState.
func (c *Conn) Destroy(name string) error {
	return c.withDomain("destroy", name, (*libvirt.Domain).Destroy)
}

// PMSuspend suspends the guest to RAM (S3). ErrUnsupported when the driver
// or the guest cannot: the lifecycle then pauses instead (spec §4.5).
func (c *Conn) PMSuspend(name string) error {
	return c.withDomain("suspend", name, func(d *libvirt.Domain) error {
		return d.PMSuspendForDuration(libvirt.NODE_SUSPEND_TARGET_MEM, 0, 0)
	})
}

// PMWakeup wakes a PM-suspended guest.
func (c *Conn) PMWakeup(name string) error {
	return c.withDomain("wake up", name, func(d *libvirt.Domain) error { return d.PMWakeup(0) })
}

// Undefine removes a (halted) domain's definition. A domain libvirt does
// not know matches ErrNoDomain.
func (c *Conn) Undefine(name string) error {
	return c.withDomain("undefine", name, (*libvirt.Domain).Undefine)
}

// AttachDevice attaches a device to the running domain (device XML, such as
// RenderDevice's), DetachDevice detaches it.
func (c *Conn) AttachDevice(name, xml string) error {
	return c.withDomain("attach device to", name, func(d *libvirt.Domain) error {
		return d.AttachDeviceFlags(xml, libvirt.DOMAIN_DEVICE_MODIFY_LIVE)
	})
}

// DetachDevice detaches a device given by its XML from the running domain.
func (c *Conn) DetachDevice(name, xml string) error {
	return c.withDomain("detach device from", name, func(d *libvirt.Domain) error {
		return d.DetachDeviceFlags(xml, libvirt.DOMAIN_DEVICE_MODIFY_LIVE)
	})
}

// Lookup describes one domain; ErrNoDomain if libvirt does not know it.
func (c *Conn) Lookup(name string) (DomainInfo, error) {
	var info DomainInfo
	err := c.withDomain("look up", name, func(d *libvirt.Domain) error {
		var err error
		info, err = describe(d)
		return err
	})
	return info, err
}

// State is the domain's power state (spec §4.1): Halted when libvirt does
// not know it or it is not active. Running may be Transient for the
// lifecycle, which knows whether the qube is fully usable.
func (c *Conn) State(name string) (PowerState, error) {
	info, err := c.Lookup(name)
	if errors.Is(err, ErrNoDomain) {
		return Halted, nil
	}
	if err != nil {
		return NA, err
	}
	return info.State, nil
}

// XMLDesc is the domain's XML as libvirt has it (the live one when running).
func (c *Conn) XMLDesc(name string) (string, error) {
	var x string
	err := c.withDomain("read XML of", name, func(d *libvirt.Domain) error {
		var err error
		x, err = d.GetXMLDesc(0)
		return err
	})
	return x, err
}

// List describes every domain libvirt knows, active or not: at daemon start
// the lifecycle adopts the running ones.
func (c *Conn) List() ([]DomainInfo, error) {
	var out []DomainInfo
	err := c.withConn("list domains", "", func(lc *libvirt.Connect) error {
		var err error
		out, err = c.listOn(lc)
		return err
	})
	return out, err
}

// FreeMemory is the host's free memory in bytes (NodeGetFreeMemory).
func (c *Conn) FreeMemory() (uint64, error) {
	var n uint64
	err := c.withConn("read free memory", "", func(lc *libvirt.Connect) error {
		var err error
		n, err = lc.GetFreeMemory()
		return err
	})
	return n, err
}

func (c *Conn) listOn(lc *libvirt.Connect) ([]DomainInfo, error) {
	doms, err := lc.ListAllDomains(0)
	if err != nil {
		return nil, err
	}
	defer func() {
		for i := range doms {
			_ = doms[i].Free()
		}
	}()
	out := make([]DomainInfo, 0, len(doms))
	for i := range doms {
		info, err := describe(&doms[i])
		if errors.Is(err, libvirt.ERR_NO_DOMAIN) {
			continue // undefined since listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

func describe(d *libvirt.Domain) (DomainInfo, error) {
	var info DomainInfo
	var err error
	if info.Name, err = d.GetName(); err != nil {
		return info, err
	}
	if info.UUID, err = d.GetUUIDString(); err != nil {
		return info, err
	}
	if info.Active, err = d.IsActive(); err != nil {
		return info, err
	}
	st, _, err := d.GetState()
	if err != nil {
		return info, err
	}
	if info.Persistent, err = d.IsPersistent(); err != nil {
		return info, err
	}
	info.State = powerState(info.Active, st)
	info.ID = -1
	if info.Active {
		// fails (without a libvirt error) if the domain stopped meanwhile
		if id, err := d.GetID(); err == nil {
			info.ID = int(id)
		}
	}
	return info, nil
}

// DomainStats is what libvirt reports of a running domain's resources
// (virDomainGetInfo): admin.vm.CurrentState and admin.vm.Stats read it.
type DomainStats struct {
	Name      string
	State     PowerState
	MemKiB    uint64 // memory the domain has now
	MaxMemKiB uint64 // its static maximum
	CPUTimeNs uint64 // CPU time used so far, all vCPUs
	VCPUs     int
}

// Stats describes one domain's resources; ErrNoDomain if libvirt does not
// know it.
func (c *Conn) Stats(name string) (DomainStats, error) {
	var s DomainStats
	err := c.withDomain("read statistics of", name, func(d *libvirt.Domain) error {
		var err error
		s, err = domainStats(d)
		return err
	})
	return s, err
}

// AllStats describes every active domain's resources, in one pass.
func (c *Conn) AllStats() ([]DomainStats, error) {
	var out []DomainStats
	err := c.withConn("read domain statistics", "", func(lc *libvirt.Connect) error {
		doms, err := lc.ListAllDomains(libvirt.CONNECT_LIST_DOMAINS_ACTIVE)
		if err != nil {
			return err
		}
		defer func() {
			for i := range doms {
				_ = doms[i].Free()
			}
		}()
		out = make([]DomainStats, 0, len(doms))
		for i := range doms {
			s, err := domainStats(&doms[i])
			if errors.Is(err, libvirt.ERR_NO_DOMAIN) {
				continue // gone since listed
			}
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

func domainStats(d *libvirt.Domain) (DomainStats, error) {
	var s DomainStats
	var err error
	if s.Name, err = d.GetName(); err != nil {
		return s, err
	}
	active, err := d.IsActive()
	if err != nil {
		return s, err
	}
	info, err := d.GetInfo()
	if err != nil {
		return s, err
	}
	s.State = powerState(active, info.State)
	s.MemKiB, s.MaxMemKiB = info.Memory, info.MaxMem
	s.CPUTimeNs, s.VCPUs = info.CpuTime, int(info.NrVirtCpu)
	return s, nil
}

// ConsoleTTY is the pseudo-terminal of the domain's console as libvirt
// has it (the live XML's /domain/devices/console/@tty): "" when the console
// is not a pty (the kvm template's writes to a file).
func (c *Conn) ConsoleTTY(name string) (string, error) {
	x, err := c.XMLDesc(name)
	if err != nil {
		return "", err
	}
	var d struct {
		Consoles []struct {
			TTY string `xml:"tty,attr"`
		} `xml:"devices>console"`
	}
	if err := xml.Unmarshal([]byte(x), &d); err != nil {
		return "", fmt.Errorf("libvirt's XML of %s: %w", name, err)
	}
	for _, con := range d.Consoles {
		if con.TTY != "" {
			return con.TTY, nil
		}
	}
	return "", nil
}
