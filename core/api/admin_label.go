package api

import (
	"strconv"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
)

// Labels (admin.label.*, dom0 only). Formats: spec admin-api §2.5.

func addLabelMethods(t methodTable) {
	label := func(c *Call) (*qubes.Label, error) {
		if err := qubes.ValidateLabelName(c.Arg, false); err != nil {
			return nil, err
		}
		return c.App.Label(c.Arg)
	}
	t.add(
		&Method{Name: "admin.label.List", Dest: DestAdminVM, Scope: Global, Handle: func(c *Call) ([]byte, error) {
			var names []string
			for _, l := range c.App.Labels() {
				names = append(names, l.Name)
			}
			return lines(names), nil
		}},
		&Method{Name: "admin.label.Get", Dest: DestAdminVM, Arg: Required, Scope: Global, Handle: func(c *Call) ([]byte, error) {
			l, err := label(c)
			if err != nil {
				return nil, err
			}
			return []byte(l.Color), nil
		}},
		&Method{Name: "admin.label.Index", Dest: DestAdminVM, Arg: Required, Scope: Global, Handle: func(c *Call) ([]byte, error) {
			l, err := label(c)
			if err != nil {
				return nil, err
			}
			return []byte(strconv.Itoa(l.Index)), nil
		}},
		&Method{Name: "admin.label.Create", Dest: DestAdminVM, Arg: Required, Payload: Required, Write: true, Scope: Global, Handle: func(c *Call) ([]byte, error) {
			if err := qubes.ValidateLabelName(c.Arg, true); err != nil {
				return nil, err
			}
			if _, err := c.App.Label(c.Arg); err == nil {
				return nil, qerr.New(qerr.LabelInUse, "Label is still in use: %s", property.PyRepr(c.Arg))
			}
			if !isASCII(string(c.Payload)) {
				return nil, qerr.New(qerr.InvalidLabelValue, "Label value must only contain ASCII characters")
			}
			_, err := c.App.CreateLabel(c.Arg, string(c.Payload))
			return nil, err
		}},
		&Method{Name: "admin.label.Remove", Dest: DestAdminVM, Arg: Required, Write: true, Scope: Global, Handle: func(c *Call) ([]byte, error) {
			if err := qubes.ValidateLabelName(c.Arg, false); err != nil {
				return nil, err
			}
			return nil, c.App.RemoveLabel(c.Arg)
		}},
	)
}
