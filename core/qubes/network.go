package qubes

import (
	"fmt"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// Networking between qubes: which qube provides the network of which,
// address derivation, and the rule that the netvm graph has no loops.

// IPv6Prefix is the site-local prefix of qube addresses.
const IPv6Prefix = "fd09:24ef:4179:0000"

// vmidToIPv4 derives a qube's address from its qid (prefix 10.137) or a
// disposable's from its dispid (10.138).
func vmidToIPv4(prefix string, id int) string {
	if id < 255 {
		return fmt.Sprintf("%s.0.%d", prefix, id)
	}
	v := id - 1
	return fmt.Sprintf("%s.%d.%d", prefix, v/254, v%254+1)
}

// ipForVM returns the IPv4 address a network provider gives to q.
func ipForVM(q *Qube) string {
	if q.class.kind == kindDisp {
		return vmidToIPv4("10.138", q.integer("dispid"))
	}
	return vmidToIPv4("10.137", q.qid)
}

func ip6ForVM(q *Qube) (any, error) {
	if q.class.kind == kindDisp {
		return parseIPv6(nil, fmt.Sprintf("%s::a8a:%x", IPv6Prefix, q.integer("dispid")))
	}
	return parseIPv6(nil, fmt.Sprintf("%s::a89:%x", IPv6Prefix, q.qid))
}

// isNetworked reports whether q can reach a network: it provides one or has
// a netvm.
func (q *Qube) isNetworked() bool {
	if !q.Has("netvm") {
		return false
	}
	return q.boolean("provides_network") || q.vm("netvm") != nil
}

func (q *Qube) ipv6Enabled() bool {
	v, _, ok := q.Features.withNetvm("ipv6")
	return ok && v != ""
}

func (q *Qube) netmask() any {
	if q.isNetworked() {
		return "255.255.255.255"
	}
	return nil
}

func defaultIP(q *Qube) (any, error) {
	if !q.isNetworked() {
		return nil, nil
	}
	return ipForVM(q), nil
}

func defaultIP6(q *Qube) (any, error) {
	if !q.isNetworked() || !q.ipv6Enabled() {
		return nil, nil
	}
	return ip6ForVM(q)
}

// ConnectedVMs returns the qubes whose effective netvm is q, in list order.
func (q *Qube) ConnectedVMs() []*Qube {
	var out []*Qube
	for _, o := range q.app.Qubes() {
		if o.vm("netvm") == q {
			out = append(out, o)
		}
	}
	return out
}

// downstream returns every qube that reaches the network through q, directly
// or through other qubes. It reads every qube's netvm once.
func (q *Qube) downstream() map[*Qube]bool {
	children := map[*Qube][]*Qube{}
	for _, o := range q.app.Qubes() {
		if n := o.vm("netvm"); n != nil {
			children[n] = append(children[n], o)
		}
	}
	seen := map[*Qube]bool{}
	queue := []*Qube{q}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, c := range children[n] {
			if !seen[c] {
				seen[c] = true
				queue = append(queue, c)
			}
		}
	}
	return seen
}

var errNetworkLoop = qerr.New(qerr.ValueError, "Loops in network are unsupported")

// setNetVM: the target must provide network and must not be q itself or a
// qube downstream of q. The loop check is skipped while loading (events off);
// loading repairs loops afterwards.
func setNetVM(h property.Holder, _ *P, v any) (any, error) {
	q := h.(*Qube)
	t, _ := v.(*Qube)
	if t == nil {
		return nil, nil
	}
	if !t.Has("provides_network") || !t.boolean("provides_network") {
		return nil, qerr.New(qerr.ValueError, "The %s qube does not provide network", t.name)
	}
	if q.eventsEnabled && (t == q || q.downstream()[t]) {
		return nil, errNetworkLoop
	}
	return t, nil
}

func setProvidesNetwork(h property.Holder, _ *P, v any) (any, error) {
	q := h.(*Qube)
	if b, _ := v.(bool); !b && len(q.ConnectedVMs()) > 0 {
		return nil, qerr.New(qerr.ValueError, "The qube is still used by other qubes, change theirs 'netvm' first")
	}
	return v, nil
}

// setDefaultNetVM refuses a default netvm that would close a loop for any
// qube that follows the default.
func setDefaultNetVM(h property.Holder, _ *P, v any) (any, error) {
	a := h.(*App)
	t, _ := v.(*Qube)
	if t == nil || !a.eventsEnabled {
		return v, nil
	}
	// After the change every qube that follows the default uses t, so there
	// is a loop exactly when t, or a qube upstream of t, follows the default.
	var looped *Qube
	seen := map[*Qube]bool{}
	for n := t; n != nil && !seen[n]; n = n.vm("netvm") {
		seen[n] = true
		// templates count too (their default is none, but the reference
		// refuses these as well)
		if d, ok := n.class.table.Lookup("netvm"); ok && n.IsDefault(d) {
			if looped == nil || compareQubes(n, looped) < 0 {
				looped = n
			}
		}
	}
	if looped != nil {
		return nil, qerr.New(qerr.PropertyValueError, "Network loop on %s", property.PyRepr(looped.name))
	}
	// Deliberately stricter than the reference, which accepts a default that
	// gives its followers no network at all.
	if !t.Has("provides_network") || !t.boolean("provides_network") {
		return nil, qerr.New(qerr.PropertyValueError, "The %s qube does not provide network", t.name)
	}
	return t, nil
}

// breakNetworkLoops runs after loading: a qube whose netvm chain leads back
// to itself gets netvm none, loudly. It returns the qubes it disconnected.
func (a *App) breakNetworkLoops() (broken []string) {
	for _, q := range a.Qubes() {
		d, ok := q.class.table.Lookup("netvm")
		if !ok {
			continue
		}
		seen := map[*Qube]bool{}
		for n := q.vm("netvm"); n != nil && !seen[n]; n = n.vm("netvm") {
			if n == q {
				a.log.Error("network loop found in the store; disconnecting the qube", "qube", q.name, "netvm", q.str("netvm"))
				q.Store(d, nil)
				broken = append(broken, q.name)
				break
			}
			seen[n] = true
		}
	}
	return broken
}
