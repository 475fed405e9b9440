package api

import (
	"regexp"
	"slices"
	"strings"

	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
)

// Features (admin.vm.feature.*) and tags (admin.vm.tag.*) of qubes.
// Formats: spec admin-api §2.4, §3.2.

var (
	featureNameRe  = regexp.MustCompile(`\A[a-zA-Z0-9_.-]+\z`)
	featureValueRe = regexp.MustCompile(`\A[\x20-\x7E]*\z`)
)

func addFeatureMethods(t methodTable) {
	t.add(
		&Method{Name: "admin.vm.feature.List", Handle: func(c *Call) ([]byte, error) {
			return lines(c.Dest.Features.Names()), nil
		}},
		&Method{Name: "admin.vm.feature.Get", Arg: Required, Handle: func(c *Call) ([]byte, error) {
			v, ok := c.Dest.Features.Get(c.Arg)
			if !ok {
				return nil, qerr.New(qerr.FeatureNotFound, "Feature not set for domain %s: %s", c.Dest.Name(), c.Arg)
			}
			return []byte(v), nil
		}},
		&Method{Name: "admin.vm.feature.Set", Arg: Required, Payload: Optional, Write: true, Handle: func(c *Call) ([]byte, error) {
			if !featureNameRe.MatchString(c.Arg) {
				return nil, qerr.New(qerr.ProtocolError, "feature name contains illegal characters")
			}
			if !isASCII(string(c.Payload)) {
				return nil, qerr.New(qerr.ProtocolError, "Feature value contains non-ASCII characters")
			}
			if !featureValueRe.Match(c.Payload) {
				return nil, qerr.New(qerr.ProtocolError, "%s value contains illegal characters", c.Arg)
			}
			return nil, c.Dest.Features.Set(c.Arg, string(c.Payload))
		}},
		&Method{Name: "admin.vm.feature.Remove", Arg: Required, Write: true, Handle: func(c *Call) ([]byte, error) {
			return nil, c.Dest.Features.Delete(c.Arg)
		}},
	)
	for _, check := range []struct {
		name string
		fn   func(f *qubes.Features, name string) (string, error)
	}{
		{"CheckWithTemplate", (*qubes.Features).CheckWithTemplate},
		{"CheckWithNetvm", (*qubes.Features).CheckWithNetvm},
		{"CheckWithAdminVM", (*qubes.Features).CheckWithAdminVM},
		{"CheckWithTemplateAndAdminVM", (*qubes.Features).CheckWithTemplateAndAdminVM},
	} {
		fn := check.fn
		t.add(&Method{Name: "admin.vm.feature." + check.name, Arg: Required, Handle: func(c *Call) ([]byte, error) {
			v, err := fn(c.Dest.Features, c.Arg)
			return []byte(v), err
		}})
	}
}

func addTagMethods(t methodTable) {
	t.add(
		&Method{Name: "admin.vm.tag.List", Handle: func(c *Call) ([]byte, error) {
			tags := append([]string(nil), c.Dest.Tags.All()...)
			slices.Sort(tags)
			return lines(tags), nil
		}},
		&Method{Name: "admin.vm.tag.Get", Arg: Required, Handle: func(c *Call) ([]byte, error) {
			if err := qubes.ValidateTag(c.Arg); err != nil {
				return nil, err
			}
			if c.Dest.Tags.Has(c.Arg) {
				return []byte("1"), nil
			}
			return []byte("0"), nil
		}},
		&Method{Name: "admin.vm.tag.Set", Arg: Required, Write: true, Handle: func(c *Call) ([]byte, error) {
			return nil, c.Dest.Tags.Add(c.Arg)
		}},
		&Method{Name: "admin.vm.tag.Remove", Arg: Required, Write: true, Handle: func(c *Call) ([]byte, error) {
			if err := qubes.ValidateTag(c.Arg); err != nil {
				return nil, err
			}
			return nil, c.Dest.Tags.Remove(c.Arg)
		}},
	)
}

// lines renders items one per line, each ending in a newline.
func lines(items []string) []byte {
	var b strings.Builder
	for _, s := range items {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
