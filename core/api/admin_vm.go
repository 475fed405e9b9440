package api

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/storage"
)

// Qubes as a whole: classes, the list, creation, removal, notes.
// Formats: spec admin-api §2.1.

func addVMMethods(t methodTable) {
	t.add(
		&Method{Name: "admin.vmclass.List", Dest: DestAdminVM, Scope: Global, Handle: func(c *Call) ([]byte, error) {
			var names []string
			for _, cl := range qubes.Classes() {
				names = append(names, cl.Name)
			}
			return lines(names), nil
		}},
		&Method{Name: "admin.vm.List", Scope: Global, Handle: func(c *Call) ([]byte, error) {
			list := []*qubes.Qube{c.Dest}
			if c.Dest.IsAdminVM() {
				list = c.App.Qubes()
			}
			b := make([]byte, 0, 96*len(list))
			for _, q := range list {
				b = appendVMListLine(b, c, q)
			}
			return b, nil
		}},
		// Not in the reference: qubes whose record in qubes.xml could not
		// be loaded. They are kept unchanged in the file but unusable until
		// the record is fixed; listing them tells the user why.
		&Method{Name: "admin.vm.quarantine.List", Dest: DestAdminVM, Scope: Global, Handle: func(c *Call) ([]byte, error) {
			var b []byte
			for _, q := range c.App.Quarantined() {
				b = append(b, q.Name...)
				b = append(b, " class="...)
				b = append(b, q.Class...)
				b = append(b, " error="...)
				b = append(b, escapeLine(q.Err.Error())...)
				b = append(b, '\n')
			}
			return b, nil
		}},
		&Method{Name: "admin.vm.Remove", Write: true, Scope: Global, Run: removeQube},
		&Method{Name: "admin.vm.notes.Get", Dest: DestVM, Handle: func(c *Call) ([]byte, error) {
			b, err := os.ReadFile(filepath.Join(c.Dest.DirPath(), "notes.txt"))
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			if err != nil {
				return nil, qerr.Wrap(qerr.Exception, err, "Failed to read notes file: %v", err)
			}
			return b, nil
		}},
		&Method{Name: "admin.vm.notes.Set", Dest: DestVM, Payload: Optional, Write: true, Handle: func(c *Call) ([]byte, error) {
			if len(c.Payload) > 256000 {
				return nil, qerr.New(qerr.ProtocolError, "Maximum note size is 256000 bytes (%d bytes received)", len(c.Payload))
			}
			if !utf8.Valid(c.Payload) {
				return nil, qerr.New(qerr.ProtocolError, "Unable to sanitise qube notes: not valid UTF-8")
			}
			notes := strings.Map(func(r rune) rune {
				if r == '\t' || r == '\n' || safeForDisplay(r) {
					return r
				}
				return '_'
			}, string(c.Payload))
			dir := c.Dest.DirPath()
			if err := os.MkdirAll(dir, 0o775); err != nil {
				return nil, qerr.Wrap(qerr.Exception, err, "Failed to write notes file: %v", err)
			}
			if err := writeFileAtomic(filepath.Join(dir, "notes.txt"), []byte(notes)); err != nil {
				return nil, qerr.Wrap(qerr.Exception, err, "Failed to write notes file: %v", err)
			}
			return nil, nil
		}},
	)
	for _, cl := range qubes.Classes() {
		cl := cl
		t.add(
			&Method{Name: "admin.vm.Create." + cl.Name, Dest: DestAdminVM, Arg: Optional, Payload: Optional, Write: true, Scope: Global,
				Prepare: func(ctx context.Context, c *Call) error { return prepareCreate(c, cl, false) },
				Run:     createQube},
			&Method{Name: "admin.vm.CreateInPool." + cl.Name, Dest: DestAdminVM, Arg: Optional, Payload: Optional, Write: true, Scope: Global,
				Prepare: func(ctx context.Context, c *Call) error { return prepareCreate(c, cl, true) },
				Run:     createQube},
		)
	}
}

// appendVMListLine appends one admin.vm.List line:
// "<name> class=<class> state=<state> uuid=<uuid>\n".
func appendVMListLine(b []byte, c *Call, q *qubes.Qube) []byte {
	b = append(b, q.Name()...)
	b = append(b, " class="...)
	b = append(b, q.ClassName()...)
	b = append(b, " state="...)
	b = append(b, c.Server.opts.States.PowerState(q)...)
	b = append(b, " uuid="...)
	b = append(b, q.UUID()...)
	return append(b, '\n')
}

var createVolumes = []string{"root", "private", "volatile", "kernel"}

// createRequest is a parsed admin.vm.Create*.
type createRequest struct {
	class *qubes.Class
	opt   qubes.CreateOptions
}

// prepareCreate parses "name=N label=L [pool=P | pool:VOL=P ...]" and
// checks it as far as the reference does before the permission event.
func prepareCreate(c *Call, cl *qubes.Class, allowPool bool) error {
	if c.Arg != "" {
		if cl.Table() != nil {
			if _, ok := cl.Table().Lookup("template"); !ok {
				return qerr.New(qerr.ProtocolError, "%s cannot be based on template", cl.Name)
			}
		}
	}
	if !isASCII(string(c.Payload)) {
		return qerr.New(qerr.ProtocolError, "Parameters contains non-ASCII characters")
	}
	opt := qubes.CreateOptions{Pools: map[string]string{}}
	seen := map[string]bool{}
	labelGiven, labelFound := false, false
	for _, untrusted := range strings.Split(string(c.Payload), " ") {
		key, value, ok := strings.Cut(untrusted, "=")
		if !ok {
			return qerr.New(qerr.ProtocolError, "Options must be key=value pairs separated by spaces, got %s", property.PyRepr(untrusted))
		}
		if seen[key] {
			if key == "pool" || strings.HasPrefix(key, "pool:") {
				return qerr.New(qerr.ProtocolError, "Option %s must be unique", property.PyRepr(key))
			}
			return qerr.New(qerr.ProtocolError, "Options must be unique")
		}
		seen[key] = true
		switch {
		case key == "name":
			if err := qubes.ValidateName(value); err != nil {
				return err
			}
			opt.Name = value
		case key == "label":
			if err := qubes.ValidateLabelName(value, true); err != nil {
				return err
			}
			labelGiven = true
			_ = c.App.Read(func() error {
				if l, err := c.App.Label(value); err == nil {
					opt.Label, labelFound = l, true
				}
				return nil
			})
		case key == "pool" && allowPool:
			opt.Pool = value
		case strings.HasPrefix(key, "pool:") && allowPool:
			vol := strings.TrimPrefix(key, "pool:")
			if !slices.Contains(createVolumes, vol) {
				return qerr.New(qerr.ProtocolError, "Volume must be one of: %s", strings.Join(createVolumes, ", "))
			}
			opt.Pools[vol] = value
		case key == "pool" || strings.HasPrefix(key, "pool:"):
			return qerr.New(qerr.ProtocolError, "Pool option specified but 'allow_pool' is False")
		default:
			return qerr.New(qerr.ProtocolError, "Options does not match: name, label, pool, pool:")
		}
	}
	if opt.Name == "" {
		return qerr.New(qerr.ProtocolError, "Creation requested without key: name")
	}
	if !labelGiven || !labelFound {
		return qerr.New(qerr.ProtocolError, "Creation requested without key: label")
	}
	if opt.Pool != "" && len(opt.Pools) > 0 {
		return qerr.New(qerr.ProtocolError, "Conflicting options specified: 'pool=', 'pool:volume='")
	}
	c.State = &createRequest{class: cl, opt: opt}
	pools := map[string]string{}
	for k, v := range opt.Pools {
		pools[k] = v
	}
	c.Perm = []events.KV{{Key: "pool", Value: opt.Pool}, {Key: "pools", Value: pools}, {Key: "name", Value: opt.Name}, {Key: "label", Value: opt.Label}}
	if c.Arg != "" {
		c.Perm = append(c.Perm, events.KV{Key: "template", Value: c.Arg})
	}
	return nil
}

// createQube creates the qube, tagged created-by-<source>, and then its
// volumes (createWithVolumes). The checks (name free, template, pools) are
// made in the same critical section as the record goes in, so of two
// creates of one name exactly one gets it.
func createQube(ctx context.Context, c *Call) ([]byte, uint64, error) {
	r := c.State.(*createRequest)
	_, version, err := createWithVolumes(ctx, c, func() (*qubes.Qube, error) {
		opt := r.opt
		if _, err := c.App.Qube(opt.Name); err == nil {
			return nil, qerr.New(qerr.VMAlreadyExists, "Qube already exists: %s", opt.Name)
		}
		if c.Arg != "" {
			t, err := c.App.Qube(c.Arg)
			if err != nil {
				return nil, err
			}
			opt.Template = t
		}
		q, err := c.App.Create(r.class, opt)
		if err != nil {
			return nil, err
		}
		return q, q.Tags.Add("created-by-" + c.Src.Name())
	})
	return nil, version, err
}

// createWithVolumes records a new qube — create runs under the write lock
// and returns it, or an error (a record it made before failing stays) —
// and then creates its volumes with no lock held. If a volume cannot be
// created, the volumes made so far are removed (storage.Manager.CreateAll)
// and so is the record; the error names the volume and its pool. Once the
// volumes exist it fires domain-create-on-disk. It returns the qube (nil
// when it was not created) and the model version to make durable.
func createWithVolumes(ctx context.Context, c *Call, create func() (*qubes.Qube, error)) (*qubes.Qube, uint64, error) {
	m := c.Server.opts.Storage
	var q *qubes.Qube
	var vols []storage.Volume
	version, err := c.App.Write(func() error {
		nq, err := create()
		if err != nil {
			return err
		}
		q = nq
		if m != nil && q.HasVM() {
			if vols, err = m.Volumes(q); err != nil {
				if rerr := c.App.Remove(q); rerr != nil {
					c.Server.log.Error("removing a qube whose volumes are unusable", "qube", q.Name(), "error", rerr)
				}
				q = nil
				return err
			}
		}
		return nil
	})
	if err != nil || len(vols) == 0 {
		return q, version, err
	}
	if err := m.CreateAll(ctx, vols); err != nil {
		v2, rerr := c.App.Write(func() error { return c.App.Remove(q) })
		if rerr != nil {
			c.Server.log.Error("removing a qube whose volumes could not be created", "qube", q.Name(), "error", rerr)
		}
		return nil, v2, err
	}
	version, err = c.App.Write(func() error { return q.FireEvent("domain-create-on-disk", false) })
	return q, version, err
}

// removeQube removes the qube's record, then its volumes with no model
// lock held. A volume that cannot be removed is logged and left on disk: the
// qube is gone either way, as in the reference.
func removeQube(ctx context.Context, c *Call) ([]byte, uint64, error) {
	m := c.Server.opts.Storage
	if lc := c.Server.opts.Lifecycle; lc != nil {
		// as the reference: under the qube's start lock, so that a start
		// cannot define a domain for a qube being removed
		unlock, err := lc.Lock(ctx, c.Dest.Name())
		if err != nil {
			return nil, 0, err
		}
		defer unlock()
	}
	var vols []storage.Volume
	version, err := c.App.Write(func() error {
		if c.Dest.IsAdminVM() {
			return qerr.New(qerr.VMInUse, "'dom0' cannot be removed")
		}
		if c.Server.runs(c.Dest) {
			return qerr.New(qerr.VMNotHalted, "Domain is powered on: %s", property.PyRepr(c.Dest.Name()))
		}
		if m != nil {
			var err error
			if vols, err = m.Volumes(c.Dest); err != nil {
				c.Server.log.Error("the volumes of a removed qube cannot be read; they are left on disk", "qube", c.Dest.Name(), "error", err)
			}
		}
		return c.App.Remove(c.Dest)
	})
	if err != nil {
		return nil, version, err
	}
	removed := true
	if len(vols) > 0 {
		if err := m.RemoveAll(ctx, vols); err != nil {
			removed = false
			c.Server.log.Error("Error while removing VM files; they are left on disk", "qube", c.Dest.Name(), "error", err)
		}
	}
	if lc := c.Server.opts.Lifecycle; lc != nil {
		lc.Forget(c.Dest.Name(), c.Dest.DirPath(), removed)
	}
	return nil, version, nil
}

// safeForDisplay approximates libqubes-pure's check: printable characters
// that are not format, private-use or unassigned code points.
func safeForDisplay(r rune) bool {
	if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
		return false
	}
	return !unicode.In(r, unicode.Cf, unicode.Co, unicode.Cs)
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+"~*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
