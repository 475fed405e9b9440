package lifecycle

import (
	"context"
	"errors"
	"strings"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/vmm"
)

// Networking between running qubes (spec §4.2 step 5c, §4.4 step 3, §4.5):
// a qube's netvm is started before it, a netvm with running clients is not
// shut down unless forced, and a running qube's netvm can be changed: its
// uplink interface is detached from the old netvm and attached to the new.

type chainKey struct{}

// startNetVM starts q's netvm n, and through it the whole upstream chain,
// each under its own start lock. The chain is carried in ctx so that a loop
// (which the netvm property refuses, but a hand-edited qubes.xml may hold)
// fails instead of waiting on its own lock.
func (m *Manager) startNetVM(ctx context.Context, q, n *qubes.Qube) error {
	chain, _ := ctx.Value(chainKey{}).([]string)
	chain = append(chain[:len(chain):len(chain)], q.Name())
	for _, c := range chain {
		if c == n.Name() {
			return qerr.New(qerr.Exception, "Cannot start %s: its network chain loops (%s -> %s); fix the netvm property of one of them",
				chain[0], strings.Join(chain, " -> "), n.Name())
		}
	}
	if m.IsRunning(n) {
		return nil
	}
	if err := m.Start(context.WithValue(ctx, chainKey{}, chain), n); err != nil {
		var se *StepError
		if errors.As(err, &se) || !qerr.Has(err) {
			return qerr.Wrap(qerr.Exception, err, "Cannot start %s: its netvm %s failed to start: %v", q.Name(), n.Name(), err)
		}
		return err
	}
	return nil
}

// runningClients are the running qubes whose netvm is q. Call it under the
// model lock.
func (m *Manager) runningClients(q *qubes.Qube) []*qubes.Qube {
	var out []*qubes.Qube
	for _, c := range q.ConnectedVMs() {
		if m.getRun(c.Name()) != nil && m.IsRunning(c) {
			out = append(out, c)
		}
	}
	return out
}

// refuseShutdownInUse is the netvm's veto of spec §4.4 step 3.
func (m *Manager) refuseShutdownInUse(q *qubes.Qube) error {
	var names []string
	_ = m.app.Read(func() error {
		if !boolean(q, "provides_network") {
			return nil
		}
		for _, c := range m.runningClients(q) {
			names = append(names, c.Name())
		}
		return nil
	})
	if len(names) == 0 {
		return nil
	}
	return qerr.New(qerr.VMInUse, "There are other VMs connected to this VM: %s", strings.Join(names, ", "))
}

// watchNetVM subscribes the runtime netvm change; the returned function
// unsubscribes it.
func (m *Manager) watchNetVM() (unsubscribe func()) {
	bus := m.app.Bus()
	subs := []func(){
		bus.Subscribe("property-pre-set:netvm", events.Core, m.preSetNetVM),
		bus.Subscribe("property-set:netvm", events.Core, m.netVMChanged),
		bus.Subscribe("property-reset:netvm", events.Core, m.netVMChanged),
	}
	return func() {
		for _, u := range subs {
			u()
		}
	}
}

// running reports whether q has a live run (under the model lock: a
// libvirt state lookup, microseconds locally).
func (m *Manager) running(q *qubes.Qube) bool {
	return q.HasVM() && m.getRun(q.Name()) != nil && m.IsRunning(q)
}

// preSetNetVM refuses to connect a running qube to a netvm that is not
// running (the reference's "Cannot dynamically attach to stopped NetVM").
func (m *Manager) preSetNetVM(e *events.Event) error {
	q, ok := e.Subject.(*qubes.Qube)
	if !ok || !m.running(q) {
		return nil
	}
	v, _ := e.Arg("newvalue")
	n, _ := v.(*qubes.Qube)
	if n == nil || !n.HasVM() || m.running(n) {
		return nil
	}
	return qerr.New(qerr.VMNotStarted, "Cannot dynamically attach to stopped NetVM: %s; start %s first",
		property.PyRepr(n.Name()), n.Name())
}

// netVMChanged moves a running qube's uplink from its old netvm to its new
// one. It runs inside the property change, under the model lock, so that
// the caller learns of a failure (as in the reference); a live attach or
// detach is a local libvirt call.
func (m *Manager) netVMChanged(e *events.Event) error {
	q, ok := e.Subject.(*qubes.Qube)
	if !ok || !m.running(q) {
		return nil
	}
	v, _ := e.Arg("oldvalue")
	old, _ := v.(*qubes.Qube)
	n := netVM(q)
	if old == n {
		return nil
	}
	if old != nil && m.running(old) {
		if err := m.detachUplink(q, old); err != nil {
			return err
		}
	}
	if n != nil && m.running(n) {
		return m.attachUplink(q, n)
	}
	return nil
}

func (m *Manager) uplinkXML(q, n *qubes.Qube) (string, error) {
	if m.opts.Renderer == nil {
		return "", errors.New("no domain template renderer")
	}
	return m.opts.Renderer.RenderInterface(uplink(q, n))
}

// attachUplink and detachUplink render q's interface to n (under the model
// lock, which the caller holds) and change the running domain.
func (m *Manager) attachUplink(q, n *qubes.Qube) error {
	x, err := m.uplinkXML(q, n)
	if err != nil {
		return netErr("connect", q.Name(), n.Name(), err)
	}
	return m.plugUplink(true, q.Name(), n.Name(), x)
}

func (m *Manager) detachUplink(q, n *qubes.Qube) error {
	x, err := m.uplinkXML(q, n)
	if err != nil {
		return netErr("disconnect", q.Name(), n.Name(), err)
	}
	return m.plugUplink(false, q.Name(), n.Name(), x)
}

// plugUplink attaches (or detaches) the interface x of qube to netvm's
// network; a domain already gone needs no detach.
func (m *Manager) plugUplink(attach bool, qube, netvm, x string) error {
	if attach {
		err := m.opts.Conn.AttachDevice(qube, x)
		if errors.Is(err, vmm.ErrUnsupported) {
			// libvirt's test driver: nothing to connect; the definition
			// written at the next start has the new uplink
			m.log.Info("the libvirt driver cannot attach devices; the new uplink applies at the next start", "qube", qube, "netvm", netvm)
			return nil
		}
		if err != nil {
			return netErr("connect", qube, netvm, err)
		}
		return nil
	}
	if err := m.opts.Conn.DetachDevice(qube, x); err != nil && !errors.Is(err, vmm.ErrNoDomain) && !errors.Is(err, vmm.ErrUnsupported) {
		return netErr("disconnect", qube, netvm, err)
	}
	return nil
}

func netErr(op, qube, netvm string, err error) error {
	return qerr.Wrap(qerr.Exception, err, "Cannot %s %s to the network of %s while it runs: %v; see the libvirt log, or restart %s to apply the change", op, qube, netvm, err, qube)
}

// replugClients attaches (or detaches) the uplink of each running client
// of the netvm n: after n has started (spec §4.2 step 8, domain-start), and
// after it has stopped (§4.3, NetVMMixin's domain-shutdown). The
// interfaces are rendered under the model lock, the domains changed
// outside it. Failures are logged: n itself is up, or gone either way.
func (m *Manager) replugClients(n *qubes.Qube, attach bool) {
	type plug struct{ qube, xml string }
	var plugs []plug
	_ = m.app.Read(func() error {
		if !boolean(n, "provides_network") {
			return nil
		}
		for _, c := range m.runningClients(n) {
			if x, err := m.uplinkXML(c, n); err == nil {
				plugs = append(plugs, plug{c.Name(), x})
			}
		}
		return nil
	})
	for _, p := range plugs {
		if err := m.plugUplink(attach, p.qube, n.Name(), p.xml); err != nil {
			m.log.Warn("changing a client's uplink to its netvm", "qube", p.qube, "netvm", n.Name(), "attach", attach, "error", err)
		}
	}
}
