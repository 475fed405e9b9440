// Package config is qubesd's configuration: the TOML schema, the embedded
// default configuration, strict loading and validation.
//
// qubesd runs on the embedded default (DefaultText, printed by
// `qubesd --print-default-config`) unless it is given a file with
// `--config FILE`. A file only overrides the keys it sets; every key it
// leaves out keeps the default's value.
//
// Decoding is strict: an unknown key, a value of the wrong type and a value
// outside what is allowed are all errors. Every problem in a file is reported
// at once (errors.Join of *Error), each naming the file and line, the key by
// its full dotted path, the bad value and what is allowed:
//
//	qubesd.toml:7: daemon.log_level = "loud": must be one of trace, debug, info, warn, error
//
// Relative paths (daemon.data_dir, daemon.run_dir, daemon.plugin_dir) are
// resolved against the directory of the file that sets them; the embedded
// default's are resolved against the current working directory. A plugin's
// path is relative to daemon.plugin_dir unless it is absolute.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/go-hclog"
)

//go:embed default.toml
var defaultTOML string

// DefaultSource is the source name of the embedded default in errors and in
// Config.Source.
const DefaultSource = "<default config>"

// PluginKind says what a plugin provides.
type PluginKind string

// The plugin kinds.
const (
	// PoolDriver is a storage pool driver; pools in qubes.xml name it.
	PoolDriver PluginKind = "pool-driver"
	// Extension subscribes to events and may add Admin API methods.
	Extension PluginKind = "extension"
)

// Log formats allowed in daemon.log_format.
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// Socket file names, created in daemon.run_dir.
const (
	SocketName         = "qubesd.sock"
	InternalSocketName = "qubesd.internal.sock"
	MiscSocketName     = "qubesd.misc.sock"
	// StoreName is the qubes.xml file in daemon.data_dir.
	StoreName = "qubes.xml"
)

// Config is a complete, validated qubesd configuration.
type Config struct {
	// Source is where the configuration came from: the file name given to
	// Load, the source given to Parse, or DefaultSource.
	Source string

	Daemon DaemonConfig

	// Plugins holds the [plugins.NAME] tables by NAME.
	Plugins map[string]Plugin
	// PluginOrder lists the plugin names in the order the file defines them
	// (default's plugins first). Extensions run in this order.
	PluginOrder []string
}

// DaemonConfig is the [daemon] table.
type DaemonConfig struct {
	DataDir     string // data_dir: qubes.xml and the qubes' data
	RunDir      string // run_dir: the Admin API sockets
	SocketGroup string // socket_group: group owning the sockets; "" = the daemon's group
	LibvirtURI  string // libvirt_uri, e.g. "test:///default", "xen:///"
	PluginDir   string // plugin_dir: relative plugin paths are resolved against it
	LogLevel    string // log_level: trace, debug, info, warn or error
	LogFormat   string // log_format: text or json
	// PoolReservePercent (pool_reserve_percent) of every pool is kept
	// free: a clone or import that would use it is refused. 0 to 50.
	PoolReservePercent int
}

// Plugin is one [plugins.NAME] table.
type Plugin struct {
	Kind PluginKind // kind: PoolDriver or Extension
	// Path is the plugin binary as written: relative to daemon.plugin_dir
	// unless absolute. Config.PluginPath gives the absolute path.
	Path string
	// SHA256 is the expected SHA-256 of the binary in hex ("" = not checked).
	SHA256 string
	// Config is the [plugins.NAME.config] table, never nil, handed to the
	// plugin as decoded: values are string, int64, float64, bool,
	// time.Time, toml.LocalDate/LocalTime/LocalDatetime, []any and
	// map[string]any. The plugin validates it.
	Config map[string]any
	// Env is the [plugins.NAME.env] table: environment variables the
	// plugin gets on top of the few qubesd sets (PATH, LANG, GOMAXPROCS,
	// TMPDIR); it replaces the first three. Nothing else of the daemon's
	// environment reaches a plugin.
	Env map[string]string
}

// NamedPlugin is a plugin with its name.
type NamedPlugin struct {
	Name string
	Plugin
}

// DefaultText returns the embedded default configuration, with its comments.
func DefaultText() string { return defaultTOML }

// Default returns the embedded default configuration with its relative
// paths resolved against the current working directory.
func Default() (*Config, error) {
	cfg, _, err := parse([]byte(defaultTOML), DefaultSource, nil)
	if err != nil {
		return nil, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("config: resolving relative paths: %w", err)
	}
	if err := cfg.Resolve(wd); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes and validates a configuration file's contents over the
// embedded default; source names it in errors. Paths are left as written:
// call Resolve, or use Load, which resolves them.
func Parse(data []byte, source string) (*Config, error) {
	cfg, _, err := parseOverDefault(data, source)
	return cfg, err
}

// Load reads, decodes and validates the configuration file at path over the
// embedded default. Relative paths the file sets are resolved against the
// file's directory; relative paths it inherits from the default, against the
// current working directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, set, err := parseOverDefault(data, path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	fileDir := filepath.Dir(abs)
	for key, p := range cfg.Daemon.pathFields() {
		if set["daemon."+key] {
			*p = resolvePath(fileDir, *p)
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("config: resolving relative paths: %w", err)
	}
	if err := cfg.Resolve(wd); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Resolve makes data_dir, run_dir and plugin_dir absolute, joining relative
// ones to baseDir (itself made absolute against the working directory), and
// checks that the socket paths fit in a unix socket address.
func (c *Config) Resolve(baseDir string) error {
	base, err := filepath.Abs(baseDir)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	written := c.Daemon.RunDir
	for _, p := range c.Daemon.pathFields() {
		*p = resolvePath(base, *p)
	}
	// The longest socket name decides.
	if s := c.Daemon.InternalSocketPath(); len(s) > maxSocketPath {
		return &Error{Source: c.Source, Key: "daemon.run_dir", Value: strconv.Quote(written),
			Msg: fmt.Sprintf("socket path %q is %d bytes; a unix socket path must be at most %d",
				s, len(s), maxSocketPath)}
	}
	return nil
}

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

func resolvePath(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// pathFields returns the path-valued keys of [daemon].
func (d *DaemonConfig) pathFields() map[string]*string {
	return map[string]*string{"data_dir": &d.DataDir, "run_dir": &d.RunDir, "plugin_dir": &d.PluginDir}
}

// SocketPath is the Admin API socket, run_dir/qubesd.sock.
func (d *DaemonConfig) SocketPath() string { return filepath.Join(d.RunDir, SocketName) }

// InternalSocketPath is the internal socket, run_dir/qubesd.internal.sock.
func (d *DaemonConfig) InternalSocketPath() string {
	return filepath.Join(d.RunDir, InternalSocketName)
}

// MiscSocketPath is the misc socket, run_dir/qubesd.misc.sock.
func (d *DaemonConfig) MiscSocketPath() string { return filepath.Join(d.RunDir, MiscSocketName) }

// StorePath is the qubes.xml file, data_dir/qubes.xml.
func (d *DaemonConfig) StorePath() string { return filepath.Join(d.DataDir, StoreName) }

// HCLogLevel returns log_level as an hclog.Level (hclog.NoLevel for a value
// that did not validate).
func (d *DaemonConfig) HCLogLevel() hclog.Level {
	switch d.LogLevel {
	case "trace":
		return hclog.Trace
	case "debug":
		return hclog.Debug
	case "info":
		return hclog.Info
	case "warn":
		return hclog.Warn
	case "error":
		return hclog.Error
	}
	return hclog.NoLevel
}

// PluginPath returns the absolute path of plugin name's binary: its path
// joined to daemon.plugin_dir unless absolute. The result is absolute once
// the configuration is resolved (Load, Default, Resolve).
func (c *Config) PluginPath(name string) (string, error) {
	p, ok := c.Plugins[name]
	if !ok {
		return "", fmt.Errorf("config: no plugin %q (configured: %s)", name, strings.Join(c.PluginOrder, ", "))
	}
	if filepath.IsAbs(p.Path) {
		return filepath.Clean(p.Path), nil
	}
	return filepath.Join(c.Daemon.PluginDir, p.Path), nil
}

// PluginsOfKind returns the plugins of one kind in configuration order.
func (c *Config) PluginsOfKind(kind PluginKind) []NamedPlugin {
	var out []NamedPlugin
	for _, name := range c.PluginOrder {
		if p := c.Plugins[name]; p.Kind == kind {
			out = append(out, NamedPlugin{Name: name, Plugin: p})
		}
	}
	return out
}

// Error is one problem in a configuration.
type Error struct {
	Source string // file name, or DefaultSource
	Line   int    // 1-based line in Source; 0 when not known
	Key    string // full dotted key, e.g. "daemon.log_level"; "" for syntax errors
	Value  string // the bad value as TOML, e.g. `"loud"`; "" when there is none
	Msg    string // what is wrong and what is allowed
	Err    error  // the underlying error (a toml.ParseError for syntax errors), or nil
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		if e.Value != "" {
			b.WriteString(" = " + e.Value)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// parseOverDefault parses data over the embedded default.
func parseOverDefault(data []byte, source string) (*Config, map[string]bool, error) {
	base, _, err := parse([]byte(defaultTOML), DefaultSource, nil)
	if err != nil {
		return nil, nil, err
	}
	return parse(data, source, base)
}

// parse decodes data over base (nil: over nothing), validates the result
// and returns it with the set of dotted keys data sets.
func parse(data []byte, source string, base *Config) (*Config, map[string]bool, error) {
	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, nil, syntaxError(source, err)
	}
	p := &parser{source: source, loc: newLocator(data), set: map[string]bool{}}
	cfg := &Config{Source: source, Plugins: map[string]Plugin{}}
	if base != nil {
		cfg.Daemon = base.Daemon
		// [daemon] keys merge one by one; the plugin list is all or
		// nothing: a file that lists plugins replaces the default's list,
		// so that it can leave one out.
		_, ownPlugins := raw["plugins"]
		for _, name := range base.PluginOrder {
			if ownPlugins {
				break
			}
			cfg.Plugins[name] = base.Plugins[name]
			cfg.PluginOrder = append(cfg.PluginOrder, name)
		}
	}
	p.top(raw, md, cfg)
	p.errs = append(p.errs, cfg.validate(p)...)
	if len(p.errs) > 0 {
		return nil, nil, p.joined()
	}
	return cfg, p.set, nil
}

func syntaxError(source string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := "syntax error: " + pe.Message
		if pe.LastKey != "" {
			msg += fmt.Sprintf(" (after key %s)", pe.LastKey)
		}
		return &Error{Source: source, Line: pe.Position.Line, Msg: msg, Err: pe}
	}
	return &Error{Source: source, Msg: err.Error(), Err: err}
}

// parser collects what a file sets and what is wrong with it.
type parser struct {
	source string
	loc    *locator
	set    map[string]bool // dotted keys the file sets
	errs   []*Error
}

// errorf records a problem with key; value is the TOML value or nil.
func (p *parser) errorf(key toml.Key, value any, format string, args ...any) {
	e := &Error{Source: p.source, Line: p.loc.line(key), Key: key.String(), Msg: fmt.Sprintf(format, args...)}
	if value != nil {
		e.Value = formatValue(value)
	}
	p.errs = append(p.errs, e)
}

// joined returns the errors in file order (those without a line last).
func (p *parser) joined() error {
	sort.SliceStable(p.errs, func(i, j int) bool {
		li, lj := p.errs[i].Line, p.errs[j].Line
		if (li == 0) != (lj == 0) {
			return lj == 0
		}
		return li < lj
	})
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

var (
	daemonKeys = []string{"data_dir", "run_dir", "socket_group", "libvirt_uri", "plugin_dir", "log_level", "log_format", "pool_reserve_percent"}
	pluginKeys = []string{"kind", "path", "sha256", "config", "env"}
)

func (p *parser) top(raw map[string]any, md toml.MetaData, cfg *Config) {
	for _, k := range sortedKeys(raw) {
		v := raw[k]
		key := toml.Key{k}
		switch k {
		case "daemon":
			if t, ok := p.table(key, v); ok {
				p.daemon(t, &cfg.Daemon)
			}
		case "plugins":
			if t, ok := p.table(key, v); ok {
				p.plugins(t, md, cfg)
			}
		default:
			p.errorf(key, nil, "unknown %s (allowed at the top level: [daemon], [plugins.NAME])", kindOf(v))
		}
	}
}

func (p *parser) table(key toml.Key, v any) (map[string]any, bool) {
	t, ok := v.(map[string]any)
	if !ok {
		p.errorf(key, v, "must be a table ([%s])", key)
	}
	return t, ok
}

func (p *parser) str(key toml.Key, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		p.errorf(key, v, "must be a string")
		return "", false
	}
	p.set[key.String()] = true
	return s, true
}

func (p *parser) daemon(t map[string]any, d *DaemonConfig) {
	fields := map[string]*string{
		"data_dir": &d.DataDir, "run_dir": &d.RunDir, "socket_group": &d.SocketGroup,
		"libvirt_uri": &d.LibvirtURI, "plugin_dir": &d.PluginDir,
		"log_level": &d.LogLevel, "log_format": &d.LogFormat,
	}
	for _, k := range sortedKeys(t) {
		key := toml.Key{"daemon", k}
		if k == "pool_reserve_percent" {
			n, ok := t[k].(int64)
			if !ok || n < 0 || n > 50 {
				p.errorf(key, t[k], "must be a whole number of percent from 0 to 50")
				continue
			}
			p.set[key.String()] = true
			d.PoolReservePercent = int(n)
			continue
		}
		dst, ok := fields[k]
		if !ok {
			p.errorf(key, nil, "unknown %s (allowed in [daemon]: %s)", kindOf(t[k]), strings.Join(daemonKeys, ", "))
			continue
		}
		if s, ok := p.str(key, t[k]); ok {
			*dst = s
		}
	}
}

func (p *parser) plugins(t map[string]any, md toml.MetaData, cfg *Config) {
	// The map has lost the file's order; the metadata keeps it.
	var order []string
	for _, k := range md.Keys() {
		if len(k) >= 2 && k[0] == "plugins" && !slices.Contains(order, k[1]) {
			order = append(order, k[1])
		}
	}
	for _, name := range sortedKeys(t) { // cannot happen, but lose nothing
		if !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	for _, name := range order {
		v, ok := t[name]
		if !ok {
			continue
		}
		key := toml.Key{"plugins", name}
		pt, ok := p.table(key, v)
		if !ok {
			continue
		}
		pl := Plugin{Config: map[string]any{}}
		for _, k := range sortedKeys(pt) {
			fkey := toml.Key{"plugins", name, k}
			switch k {
			case "kind":
				if s, ok := p.str(fkey, pt[k]); ok {
					pl.Kind = PluginKind(s)
				}
			case "path":
				pl.Path, _ = p.str(fkey, pt[k])
			case "sha256":
				pl.SHA256, _ = p.str(fkey, pt[k])
			case "config":
				if c, ok := p.table(fkey, pt[k]); ok {
					pl.Config = c
				}
			case "env":
				pl.Env = p.env(fkey, pt[k])
			default:
				p.errorf(fkey, nil, "unknown %s (allowed in [plugins.NAME]: %s)", kindOf(pt[k]), strings.Join(pluginKeys, ", "))
			}
		}
		if _, dup := cfg.Plugins[name]; !dup {
			cfg.PluginOrder = append(cfg.PluginOrder, name)
		}
		cfg.Plugins[name] = pl
	}
}

// envName is what a plugin's environment variable may be called.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// env checks a [plugins.NAME.env] table: string values, valid names, and
// not TMPDIR, which qubesd points at the plugin's private directory.
func (p *parser) env(key toml.Key, v any) map[string]string {
	t, ok := p.table(key, v)
	if !ok {
		return nil
	}
	env := make(map[string]string, len(t))
	for _, name := range sortedKeys(t) {
		vkey := append(slices.Clone(key), name)
		switch val, isStr := t[name].(string); {
		case !envName.MatchString(name):
			p.errorf(vkey, nil, "not a valid environment variable name (letters, digits and _, not starting with a digit)")
		case name == "TMPDIR":
			p.errorf(vkey, nil, "qubesd sets TMPDIR to the plugin's private directory under daemon.run_dir; it cannot be changed")
		case !isStr:
			p.errorf(vkey, t[name], "must be a string (quote numbers: %s = \"%s\")", name, formatValue(t[name]))
		default:
			env[name] = val
		}
	}
	return env
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func kindOf(v any) string {
	if _, ok := v.(map[string]any); ok {
		return "table"
	}
	return "key"
}

// formatValue writes a decoded TOML value back as TOML, shortened.
func formatValue(v any) string {
	var s string
	switch v := v.(type) {
	case string:
		s = strconv.Quote(v)
	case time.Time:
		s = v.Format(time.RFC3339Nano)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = formatValue(e)
		}
		s = "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		s = "{...}"
	case []map[string]any:
		s = "[{...}]"
	default:
		s = fmt.Sprint(v)
	}
	const max = 80
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	return s
}
