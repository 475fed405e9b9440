package api

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// The internal socket (qubesd.internal.sock, dom0 tools only; spec
// admin-api §1.9, §1.10). admin.vm.volume.Import[WithSize] is not a method
// of qubesd: the data may be gigabytes, the request limit is 64 KiB. The
// caller (the qrexec service, or qvm-volume import run as root in dom0)
// calls internal.vm.volume.ImportBegin, writes the data to the path it
// gets, then calls internal.vm.volume.ImportEnd, whose reply is the reply
// of the import. cmd/qubesd-volume-import (the qrexec service) and
// qvm-volume import are such callers, through sdk/admin.WriteImport.

// newInternalMethodTable builds the internal socket's methods.
func newInternalMethodTable() methodTable {
	t := methodTable{}
	t.add(
		&Method{Name: "internal.vm.volume.ImportBegin", Arg: Required, Payload: Optional, Write: true,
			Prepare: prepareImport(func(c *Call, vc *volumeCall) error {
				c.PermMethod = "admin.vm.volume.Import"
				if len(c.Payload) > 0 {
					c.PermMethod = "admin.vm.volume.ImportWithSize"
				}
				return nil
			}),
			Run: importBegin},
		// ImportBegin asked for the permission of the whole import
		&Method{Name: "internal.vm.volume.ImportEnd", Arg: Required, Payload: Required, Write: true, NoPermission: true,
			Prepare: prepareImport(nil),
			Run:     importEnd},
	)
	return t
}

// prepareImport checks that the argument is a volume of the destination;
// the internal API says so with a ProtocolError naming no quotes.
func prepareImport(more func(c *Call, vc *volumeCall) error) func(ctx context.Context, c *Call) error {
	return volumePreparer(func(c *Call, names []string) error {
		if !slices.Contains(names, c.Arg) {
			return qerr.New(qerr.ProtocolError, "Argument not in %s volumes", c.Dest.Name())
		}
		return nil
	}, more)
}

func importBegin(ctx context.Context, c *Call) ([]byte, uint64, error) {
	m, err := c.Server.storage()
	if err != nil {
		return nil, 0, err
	}
	vc := c.State.(*volumeCall)
	if c.Server.runs(c.Dest) {
		return nil, 0, qerr.New(qerr.VMNotHalted, "Domain is powered on: %s", property.PyRepr(c.Dest.Name()))
	}
	size := vc.vol.Spec.Size
	if len(c.Payload) > 0 {
		n, err := validateNumber(c.Payload, "size of new data", false)
		if err != nil {
			return nil, 0, err
		}
		size = uint64(n)
	}
	path, err := m.ImportBegin(ctx, vc.vol, size)
	if err != nil {
		return nil, 0, err
	}
	if strings.ContainsAny(path, " \t\n\r\v\f") {
		_ = m.ImportEnd(context.WithoutCancel(ctx), vc.vol, false)
		return nil, 0, qerr.New(qerr.ProtocolError, "Path contains whitespace")
	}
	_, _ = c.App.Write(func() error {
		return c.Dest.FireEvent("domain-volume-import-begin", false, events.KV{Key: "volume", Value: c.Arg}, events.KV{Key: "size", Value: size})
	})
	return []byte(strconv.FormatUint(size, 10) + " " + path), 0, nil
}

func importEnd(ctx context.Context, c *Call) ([]byte, uint64, error) {
	m, err := c.Server.storage()
	if err != nil {
		return nil, 0, err
	}
	vc := c.State.(*volumeCall)
	success := string(c.Payload) == "ok"
	fire := func(ok bool) {
		_, _ = c.App.Write(func() error {
			return c.Dest.FireEvent("domain-volume-import-end", false, events.KV{Key: "volume", Value: c.Arg}, events.KV{Key: "success", Value: ok})
		})
	}
	if err := m.ImportEnd(ctx, vc.vol, success); err != nil {
		fire(false)
		return nil, 0, err
	}
	fire(success)
	if !success {
		msg := ""
		if _, rest, ok := strings.Cut(string(c.Payload), "\n"); ok {
			msg = rest
		}
		if !isASCII(msg) {
			msg = strings.ToValidUTF8(msg, "?")
		}
		return nil, 0, qerr.New(qerr.Exception, "Data import failed: %s", msg)
	}
	// the Manager records (and commits) the size of what was imported
	return nil, 0, nil
}
