package config

import (
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

var (
	logLevels     = []string{"trace", "debug", "info", "warn", "error"}
	pluginNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	sha256RE      = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	libvirtURIEgs = `(e.g. "test:///default", "qemu:///system", "xen:///")`
)

// Validate checks every value of c and reports all problems at once
// (errors.Join of *Error). Load, Parse and Default validate already; call it
// after changing a Config in code.
func (c *Config) Validate() error {
	p := &parser{source: c.Source, loc: newLocator(nil)}
	p.errs = c.validate(p)
	if len(p.errs) == 0 {
		return nil
	}
	return p.joined()
}

// validate returns the problems with c's values. The daemon keys always have
// a value (a file inherits the default's), so their errors show it even when
// empty; a plugin key shows its value when it has one.
func (c *Config) validate(p *parser) []*Error {
	var errs []*Error
	bad := func(key toml.Key, value *string, msg string) {
		e := &Error{Source: p.source, Line: p.loc.line(key), Key: key.String(), Msg: msg}
		if value != nil {
			e.Value = formatValue(*value)
		}
		errs = append(errs, e)
	}

	d := &c.Daemon
	for _, f := range []struct {
		name string
		v    *string
	}{{"data_dir", &d.DataDir}, {"run_dir", &d.RunDir}, {"plugin_dir", &d.PluginDir}} {
		if *f.v == "" {
			bad(toml.Key{"daemon", f.name}, f.v, "required")
		}
	}
	if d.LibvirtURI == "" {
		bad(toml.Key{"daemon", "libvirt_uri"}, &d.LibvirtURI, "required "+libvirtURIEgs)
	} else if u, err := url.Parse(d.LibvirtURI); err != nil || u.Scheme == "" {
		bad(toml.Key{"daemon", "libvirt_uri"}, &d.LibvirtURI, "must be a libvirt URI "+libvirtURIEgs)
	}
	if !slices.Contains(logLevels, d.LogLevel) {
		bad(toml.Key{"daemon", "log_level"}, &d.LogLevel, "must be one of "+strings.Join(logLevels, ", "))
	}
	if d.LogFormat != LogFormatText && d.LogFormat != LogFormatJSON {
		bad(toml.Key{"daemon", "log_format"}, &d.LogFormat, `must be "text" or "json"`)
	}

	for _, name := range c.PluginOrder {
		pl := c.Plugins[name]
		if !pluginNameRE.MatchString(name) {
			bad(toml.Key{"plugins", name}, nil,
				`invalid plugin name: must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, "_" and "-")`)
		}
		key := func(k string) toml.Key { return toml.Key{"plugins", name, k} }
		kind := string(pl.Kind)
		switch {
		case kind == "":
			bad(key("kind"), nil, `required: "pool-driver" or "extension"`)
		case pl.Kind != PoolDriver && pl.Kind != Extension:
			bad(key("kind"), &kind, `must be "pool-driver" or "extension"`)
		}
		if pl.Path == "" {
			bad(key("path"), nil, "required")
		}
		if pl.SHA256 != "" && !sha256RE.MatchString(pl.SHA256) {
			bad(key("sha256"), &pl.SHA256, "must be 64 hexadecimal characters")
		}
	}
	return errs
}
