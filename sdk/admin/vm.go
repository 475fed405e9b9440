package admin

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// VMInfo is one line of admin.vm.List.
type VMInfo struct {
	Name  string // the qube's name
	Class string // AdminVM, AppVM, TemplateVM, StandaloneVM, DispVM, ...
	State string // power state: Halted, Transient, Running, Paused, Suspended, Halting, Dying, Crashed, NA
	UUID  string // may be empty with daemons that do not send it
}

// ListVMs returns every qube, as admin.vm.List on dom0 lists them (dom0
// first, then by name): "name class=C state=S uuid=U\n" per qube.
func (c *Client) ListVMs(ctx context.Context) ([]VMInfo, error) {
	return c.listVMs(ctx, AdminVM)
}

// VM returns the admin.vm.List line of one qube (admin.vm.List with that
// qube as destination; for dom0, which lists every qube, its own line). An
// unknown qube gives a QubesVMNotFoundError.
func (c *Client) VM(ctx context.Context, name string) (VMInfo, error) {
	vms, err := c.listVMs(ctx, name)
	if err != nil {
		return VMInfo{}, err
	}
	for _, vm := range vms {
		if vm.Name == name {
			return vm, nil
		}
	}
	return VMInfo{}, fmt.Errorf("admin.vm.List on %s: %w: the qube is not listed", name, ErrMalformedReply)
}

func (c *Client) listVMs(ctx context.Context, dest string) ([]VMInfo, error) {
	body, err := c.Call(ctx, "admin.vm.List", dest, "", nil)
	if err != nil {
		return nil, err
	}
	var vms []VMInfo
	for _, line := range lines(body) {
		vm, err := parseVMLine(line)
		if err != nil {
			return nil, err
		}
		vms = append(vms, vm)
	}
	return vms, nil
}

// parseVMLine parses "name class=C state=S uuid=U".
func parseVMLine(line string) (VMInfo, error) {
	name, rest, _ := strings.Cut(line, " ")
	vm := VMInfo{Name: name}
	for _, kv := range strings.Fields(rest) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return VMInfo{}, fmt.Errorf("admin.vm.List: %w: %q", ErrMalformedReply, line)
		}
		switch k {
		case "class":
			vm.Class = v
		case "state":
			vm.State = v
		case "uuid":
			vm.UUID = v
		}
	}
	return vm, nil
}

// QubeProperties is a qube as admin.vm.List shows it, with all its
// properties.
type QubeProperties struct {
	VMInfo
	Properties []Property
}

// AllProperties returns every qube with its properties in one call
// (admin.vm.property.GetAllBulk: for each qube its admin.vm.List line, its
// admin.vm.property.GetAll lines and an empty line). With names, only those
// properties are returned; without, all of them. The method is a qubesd-go
// addition: a daemon without it answers ProtocolError "no such method" (see
// IsNoSuchMethod), and the caller falls back to ListVMs and Properties.
func (c *Client) AllProperties(ctx context.Context, names ...string) ([]QubeProperties, error) {
	const method = "admin.vm.property.GetAllBulk"
	body, err := c.Call(ctx, method, AdminVM, "", []byte(strings.Join(names, " ")))
	if err != nil {
		return nil, err
	}
	var out []QubeProperties
	for rest := string(body); rest != ""; {
		block, after, _ := strings.Cut(rest, "\n\n")
		rest = after
		head, props, _ := strings.Cut(block, "\n")
		vm, err := parseVMLine(head)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		ps, err := parseGetAllText(method, props)
		if err != nil {
			return nil, err
		}
		out = append(out, QubeProperties{VMInfo: vm, Properties: ps})
	}
	return out, nil
}

// VMClasses returns the qube classes the daemon can create
// (admin.vmclass.List), sorted.
func (c *Client) VMClasses(ctx context.Context) ([]string, error) {
	names, err := c.list(ctx, "admin.vmclass.List", AdminVM, "")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// VMState is the reply of admin.vm.CurrentState.
type VMState struct {
	PowerState   string // Halted, Running, Paused, ...
	Mem          int64  // memory in use, KiB
	MemStaticMax int64  // maximum memory, KiB
	CPUTime      int64  // CPU time used
	// Fields holds every key=value pair of the reply, including the above.
	Fields map[string]string
}

// CurrentState returns the power state and memory use of vm
// (admin.vm.CurrentState: "mem=N mem_static_max=N cputime=N power_state=S").
func (c *Client) CurrentState(ctx context.Context, vm string) (VMState, error) {
	body, err := c.Call(ctx, "admin.vm.CurrentState", vm, "", nil)
	if err != nil {
		return VMState{}, err
	}
	return parseCurrentState(body)
}

// PoolSpec chooses storage pools for a new qube (CreateInPool): either Pool
// for every volume, or Volumes mapping volume names (root, private,
// volatile, kernel) to pools.
type PoolSpec struct {
	Pool    string
	Volumes map[string]string
}

// Create creates a qube of class (AppVM, TemplateVM, ...) named name with
// label label, based on template ("" for the class's default or for classes
// without a template), with admin.vm.Create.<class>[+template] and the
// payload "name=N label=L". It then sets each of props, in order, with
// admin.vm.property.Set; if some of them fail the qube exists and the error
// is a *PartialCreateError.
func (c *Client) Create(ctx context.Context, class, template, name, label string, props ...KV) error {
	return c.create(ctx, "admin.vm.Create.", class, template, name, label, "", props)
}

// CreateInPool is Create with storage pools chosen by pools, with
// admin.vm.CreateInPool.<class>[+template] and the payload
// "name=N label=L pool=P" or "name=N label=L pool:vol=P ..." (sorted by
// volume).
func (c *Client) CreateInPool(ctx context.Context, class, template, name, label string, pools PoolSpec, props ...KV) error {
	if pools.Pool != "" && len(pools.Volumes) > 0 {
		return fmt.Errorf("admin: choose either one pool for all volumes or pools per volume, not both")
	}
	var extra strings.Builder
	if pools.Pool != "" {
		if err := payloadWord("pool", pools.Pool); err != nil {
			return err
		}
		extra.WriteString(" pool=" + pools.Pool)
	}
	vols := make([]string, 0, len(pools.Volumes))
	for v := range pools.Volumes {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	for _, v := range vols {
		if err := payloadWord("volume", v); err != nil {
			return err
		}
		if err := payloadWord("pool", pools.Volumes[v]); err != nil {
			return err
		}
		extra.WriteString(" pool:" + v + "=" + pools.Volumes[v])
	}
	if extra.Len() == 0 {
		return fmt.Errorf("admin: CreateInPool needs a pool")
	}
	return c.create(ctx, "admin.vm.CreateInPool.", class, template, name, label, extra.String(), props)
}

func (c *Client) create(ctx context.Context, prefix, class, template, name, label, extra string, props []KV) error {
	if err := payloadWord("qube name", name); err != nil {
		return err
	}
	if err := payloadWord("label", label); err != nil {
		return err
	}
	payload := "name=" + name + " label=" + label + extra
	if _, err := c.Call(ctx, prefix+class, AdminVM, template, []byte(payload)); err != nil {
		return err
	}
	var failed []*PropertySetError
	for _, p := range props {
		if err := c.SetProperty(ctx, name, p.Key, p.Value); err != nil {
			failed = append(failed, &PropertySetError{VM: name, Property: p.Key, Value: p.Value, Err: err})
		}
	}
	if len(failed) > 0 {
		return &PartialCreateError{VM: name, Failed: failed}
	}
	return nil
}

// payloadWord refuses values that would change the meaning of a
// space-separated key=value payload.
func payloadWord(what, v string) error {
	if v == "" || strings.ContainsAny(v, " \t\n\x00") {
		return fmt.Errorf("admin: invalid %s %q", what, v)
	}
	return nil
}

// Remove removes vm (admin.vm.Remove). A qube still in use gives
// QubesVMInUseError; one that is not halted, QubesVMNotHaltedError.
func (c *Client) Remove(ctx context.Context, vm string) error {
	_, err := c.Call(ctx, "admin.vm.Remove", vm, "", nil)
	return err
}

// list calls a method whose reply is one name per line.
func (c *Client) list(ctx context.Context, method, dest, arg string) ([]string, error) {
	body, err := c.Call(ctx, method, dest, arg, nil)
	if err != nil {
		return nil, err
	}
	return lines(body), nil
}

// lines splits a reply body into its non-empty lines.
func lines(body []byte) []string {
	s := string(body)
	if s == "" {
		return nil
	}
	out := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	n := 0
	for _, l := range out {
		if l != "" {
			out[n] = l
			n++
		}
	}
	return out[:n]
}

// QuarantinedQube is a qube whose record in qubes.xml could not be loaded:
// the daemon keeps the record unchanged but the qube cannot be used until
// the record is fixed.
type QuarantinedQube struct {
	Name  string
	Class string
	Error string // why the record did not load
}

// Quarantined lists the quarantined qubes (admin.vm.quarantine.List, a
// qubesd-go addition: a daemon without it answers ProtocolError "no such
// method", see IsNoSuchMethod).
func (c *Client) Quarantined(ctx context.Context) ([]QuarantinedQube, error) {
	const method = "admin.vm.quarantine.List"
	body, err := c.Call(ctx, method, AdminVM, "", nil)
	if err != nil {
		return nil, err
	}
	var out []QuarantinedQube
	for _, line := range lines(body) {
		name, rest, _ := strings.Cut(line, " class=")
		class, msg, ok := strings.Cut(rest, " error=")
		if !ok {
			return nil, fmt.Errorf("%s: %w: %q", method, ErrMalformedReply, line)
		}
		msg, err := unescapeGetAll(msg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		out = append(out, QuarantinedQube{Name: name, Class: class, Error: msg})
	}
	return out, nil
}
