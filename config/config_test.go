package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/go-hclog"
)

// problems splits an error from Parse/Load into its messages.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []string
	for _, e := range errs {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Errorf("error %q is %T, not *config.Error", e, e)
		}
		out = append(out, e.Error())
	}
	return out
}

func TestDefault(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Default()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	want := DaemonConfig{
		DataDir:     filepath.Join(wd, "_run", "data"),
		RunDir:      filepath.Join(wd, "_run"),
		SocketGroup: "qubes",
		LibvirtURI:  "test:///default",
		PluginDir:   filepath.Join(wd, "bin"),
		LogLevel:    "info",
		LogFormat:   "text",

		PoolReservePercent: 5,
	}
	if cfg.Daemon != want {
		t.Errorf("Default().Daemon =\n%+v\nwant\n%+v", cfg.Daemon, want)
	}
	if want := []string{"file", "file-reflink", "linux-kernel"}; cfg.Source != DefaultSource || !reflect.DeepEqual(cfg.PluginOrder, want) {
		t.Errorf("Default() = source %q, plugins %v; want %q and the pool drivers %v", cfg.Source, cfg.PluginOrder, DefaultSource, want)
	}
	for _, n := range cfg.PluginOrder {
		if cfg.Plugins[n].Kind != PoolDriver {
			t.Errorf("default plugin %s: kind %q, want pool-driver", n, cfg.Plugins[n].Kind)
		}
	}
	for got, want := range map[string]string{
		cfg.Daemon.SocketPath():         filepath.Join(wd, "_run", "qubesd.sock"),
		cfg.Daemon.InternalSocketPath(): filepath.Join(wd, "_run", "qubesd.internal.sock"),
		cfg.Daemon.MiscSocketPath():     filepath.Join(wd, "_run", "qubesd.misc.sock"),
		cfg.Daemon.StorePath():          filepath.Join(wd, "_run", "data", "qubes.xml"),
	} {
		if got != want {
			t.Errorf("derived path %q, want %q", got, want)
		}
	}
	if got := cfg.Daemon.HCLogLevel(); got != hclog.Info {
		t.Errorf("HCLogLevel() = %v, want info", got)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// The text parses on its own, unresolved, to the same values.
	raw, err := Parse([]byte(DefaultText()), "default.toml")
	if err != nil {
		t.Fatalf("Parse(DefaultText()): %v", err)
	}
	if raw.Daemon.DataDir != "./_run/data" || raw.Daemon.RunDir != "./_run" || raw.Daemon.PluginDir != "./bin" {
		t.Errorf("Parse(DefaultText()) resolved paths: %+v", raw.Daemon)
	}
}

// The commented-out plugin examples in the default are valid once uncommented.
func TestDefaultExamples(t *testing.T) {
	uncomment := regexp.MustCompile(`(?m)^# (\[plugins|kind|path|sha256)`)
	text := uncomment.ReplaceAllString(DefaultText(), "$1")
	cfg, err := Parse([]byte(text), "uncommented.toml")
	if err != nil {
		t.Fatalf("uncommented examples: %v", err)
	}
	if want := []string{"file", "file-reflink", "linux-kernel", "block"}; !reflect.DeepEqual(cfg.PluginOrder, want) {
		t.Fatalf("plugins %v, want %v", cfg.PluginOrder, want)
	}
	if cfg.Plugins["file"].Kind != PoolDriver || cfg.Plugins["block"].Kind != Extension {
		t.Errorf("kinds: %+v", cfg.Plugins)
	}
}

func TestUnknownKeys(t *testing.T) {
	const daemonAllowed = "(allowed in [daemon]: data_dir, run_dir, socket_group, libvirt_uri, plugin_dir, log_level, log_format, pool_reserve_percent)"
	const pluginAllowed = "(allowed in [plugins.NAME]: kind, path, sha256, config, env)"
	const topAllowed = "(allowed at the top level: [daemon], [plugins.NAME])"
	tests := []struct {
		name, toml string
		want       []string
	}{
		{"top-level key", "foo = 1\n",
			[]string{"t.toml:1: foo: unknown key " + topAllowed}},
		{"top-level table", "[daemon]\nlog_level = \"info\"\n\n[server]\nport = 1\n",
			[]string{"t.toml:4: server: unknown table " + topAllowed}},
		{"top-level dotted", "server.port = 1\n",
			[]string{"t.toml:1: server: unknown table " + topAllowed}},
		{"daemon key", "[daemon]\nlog_level = \"info\"\nlogformat = \"json\"\n",
			[]string{"t.toml:3: daemon.logformat: unknown key " + daemonAllowed}},
		{"daemon dotted key", "daemon.colour = \"red\"\n",
			[]string{"t.toml:1: daemon.colour: unknown key " + daemonAllowed}},
		{"daemon subtable", "[daemon]\n[daemon.extra]\nx = 1\n",
			[]string{"t.toml:2: daemon.extra: unknown table " + daemonAllowed}},
		{"plugin key", "[plugins.file]\nkind = \"pool-driver\"\npath = \"p\"\nsha = \"\"\n",
			[]string{"t.toml:4: plugins.file.sha: unknown key " + pluginAllowed}},
		{"plugin key, inline table", "[plugins]\nfile = { kind = \"extension\", path = \"p\", flavour = 1 }\n",
			[]string{"t.toml:2: plugins.file.flavour: unknown key " + pluginAllowed}},
		{"quoted plugin name", "[plugins.\"my ext\"]\nkind = \"extension\"\npath = \"p\"\nx = 1\n",
			[]string{
				`t.toml:1: plugins."my ext": invalid plugin name: must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, "_" and "-")`,
				`t.toml:4: plugins."my ext".x: unknown key ` + pluginAllowed,
			}},
		{"plugin config is free-form", "[plugins.file]\nkind = \"pool-driver\"\npath = \"p\"\n[plugins.file.config]\nanything = 1\n[plugins.file.config.deeper]\nx = [1, 2]\n",
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.toml), "t.toml")
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestValidationErrors(t *testing.T) {
	const plugin = "[plugins.file]\nkind = \"pool-driver\"\npath = \"qubesd-pool-file\"\n"
	tests := []struct {
		name, toml, want string
	}{
		{"log_level", "[daemon]\nlog_level = \"loud\"\n",
			`t.toml:2: daemon.log_level = "loud": must be one of trace, debug, info, warn, error`},
		{"log_level case", "[daemon]\nlog_level = \"INFO\"\n",
			`t.toml:2: daemon.log_level = "INFO": must be one of trace, debug, info, warn, error`},
		{"log_level type", "[daemon]\nlog_level = 5\n",
			`t.toml:2: daemon.log_level = 5: must be a string`},
		{"log_format", "[daemon]\nlog_format = \"xml\"\n",
			`t.toml:2: daemon.log_format = "xml": must be "text" or "json"`},
		{"libvirt_uri empty", "[daemon]\nlibvirt_uri = \"\"\n",
			`t.toml:2: daemon.libvirt_uri = "": required (e.g. "test:///default", "qemu:///system", "xen:///")`},
		{"libvirt_uri no scheme", "[daemon]\nlibvirt_uri = \"system\"\n",
			`t.toml:2: daemon.libvirt_uri = "system": must be a libvirt URI (e.g. "test:///default", "qemu:///system", "xen:///")`},
		{"data_dir", "[daemon]\ndata_dir = \"\"\n", `t.toml:2: daemon.data_dir = "": required`},
		{"run_dir", "[daemon]\nrun_dir = \"\"\n", `t.toml:2: daemon.run_dir = "": required`},
		{"plugin_dir", "[daemon]\nplugin_dir = \"\"\n", `t.toml:2: daemon.plugin_dir = "": required`},
		{"data_dir type", "[daemon]\ndata_dir = [\"a\", \"b\"]\n", `t.toml:2: daemon.data_dir = ["a", "b"]: must be a string`},
		{"daemon not a table", "daemon = \"x\"\n", `t.toml:1: daemon = "x": must be a table ([daemon])`},
		{"plugins not a table", "plugins = [1]\n", `t.toml:1: plugins = [1]: must be a table ([plugins])`},
		{"plugin not a table", "[plugins]\nfile = true\n", `t.toml:2: plugins.file = true: must be a table ([plugins.file])`},
		{"plugin config not a table", plugin + "config = 5\n", `t.toml:4: plugins.file.config = 5: must be a table ([plugins.file.config])`},
		{"kind", "[plugins.file]\nkind = \"pool\"\npath = \"p\"\n",
			`t.toml:2: plugins.file.kind = "pool": must be "pool-driver" or "extension"`},
		{"kind missing", "[plugins.file]\npath = \"p\"\n",
			`t.toml:1: plugins.file.kind: required: "pool-driver" or "extension"`},
		{"path missing", "[plugins.file]\nkind = \"extension\"\n", `t.toml:1: plugins.file.path: required`},
		{"path empty", "[plugins.file]\nkind = \"extension\"\npath = \"\"\n", `t.toml:3: plugins.file.path: required`},
		{"sha256", plugin + "sha256 = \"xyz\"\n", `t.toml:4: plugins.file.sha256 = "xyz": must be 64 hexadecimal characters`},
		{"sha256 65", plugin + "sha256 = \"" + strings.Repeat("a", 65) + "\"\n",
			`t.toml:4: plugins.file.sha256 = "` + strings.Repeat("a", 65) + `": must be 64 hexadecimal characters`},
		{"plugin name", "[plugins.File]\nkind = \"extension\"\npath = \"p\"\n",
			`t.toml:1: plugins.File: invalid plugin name: must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, "_" and "-")`},
		{"plugin name leading dash", "[plugins.-x]\nkind = \"extension\"\npath = \"p\"\n",
			`t.toml:1: plugins.-x: invalid plugin name: must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, "_" and "-")`},
		{"pool_reserve_percent too big", "[daemon]\npool_reserve_percent = 60\n", `t.toml:2: daemon.pool_reserve_percent = 60: must be a whole number of percent from 0 to 50`},
		{"pool_reserve_percent a string", "[daemon]\npool_reserve_percent = \"5\"\n", `t.toml:2: daemon.pool_reserve_percent = "5": must be a whole number of percent from 0 to 50`},
		{"env not a table", plugin + "env = \"A=1\"\n", `t.toml:4: plugins.file.env = "A=1": must be a table ([plugins.file.env])`},
		{"env value not a string", plugin + "[plugins.file.env]\nGOMAXPROCS = 4\n",
			`t.toml:5: plugins.file.env.GOMAXPROCS = 4: must be a string (quote numbers: GOMAXPROCS = "4")`},
		{"env name", plugin + "[plugins.file.env]\n\"9LIVES\" = \"x\"\n",
			`t.toml:5: plugins.file.env.9LIVES: not a valid environment variable name (letters, digits and _, not starting with a digit)`},
		{"env name with =", plugin + "env = { \"A=B\" = \"x\" }\n",
			`t.toml:4: plugins.file.env."A=B": not a valid environment variable name (letters, digits and _, not starting with a digit)`},
		{"env TMPDIR", plugin + "[plugins.file.env]\nTMPDIR = \"/tmp\"\n",
			`t.toml:5: plugins.file.env.TMPDIR: qubesd sets TMPDIR to the plugin's private directory under daemon.run_dir; it cannot be changed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.toml), "t.toml")
			if cfg != nil {
				t.Errorf("Parse returned a config with the error")
			}
			if got := problems(t, err); len(got) != 1 || got[0] != tt.want {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), tt.want)
			}
		})
	}

	// Accepted values.
	for _, ok := range []string{
		"[daemon]\nlog_level = \"trace\"\nlog_format = \"json\"\nlibvirt_uri = \"qemu+ssh://root@host/system\"\nsocket_group = \"\"\n",
		"[daemon]\nlibvirt_uri = \"xen:///\"\n",
		plugin + "sha256 = \"" + strings.Repeat("0123456789abcdeF", 4) + "\"\n",
		"[plugins.a_b-9]\nkind = \"extension\"\npath = \"/abs/p\"\n",
		plugin + "[plugins.file.env]\nGOMAXPROCS = \"2\"\n_X1 = \"\"\n",
	} {
		if _, err := Parse([]byte(ok), "ok.toml"); err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
		}
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	const text = `[daemon]
log_level = "loud"
log_format = "xml"
data_dir = ""
colour = "blue"

[plugins.file]
kind = "pool"
sha256 = "xyz"

[plugins.Bad]
kind = "extension"
path = "p"

[extra]
`
	_, err := Parse([]byte(text), "many.toml")
	want := []string{
		`many.toml:2: daemon.log_level = "loud": must be one of trace, debug, info, warn, error`,
		`many.toml:3: daemon.log_format = "xml": must be "text" or "json"`,
		`many.toml:4: daemon.data_dir = "": required`,
		`many.toml:5: daemon.colour: unknown key (allowed in [daemon]: data_dir, run_dir, socket_group, libvirt_uri, plugin_dir, log_level, log_format, pool_reserve_percent)`,
		`many.toml:7: plugins.file.path: required`,
		`many.toml:8: plugins.file.kind = "pool": must be "pool-driver" or "extension"`,
		`many.toml:9: plugins.file.sha256 = "xyz": must be 64 hexadecimal characters`,
		`many.toml:11: plugins.Bad: invalid plugin name: must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, "_" and "-")`,
		`many.toml:15: extra: unknown table (allowed at the top level: [daemon], [plugins.NAME])`,
	}
	if got := problems(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("err.Error() =\n%s", got)
	}
}

// A file without plugins keeps the default's; one with plugins replaces
// the whole list, so that it can leave a default plugin out.
func TestPluginListIsAllOrNothing(t *testing.T) {
	tests := []struct {
		name, toml string
		want       []string
	}{
		{"no plugins: the default's", "[daemon]\nlog_level = \"debug\"\n", []string{"file", "file-reflink", "linux-kernel"}},
		{"plugins: only the file's", "[plugins.lvm]\nkind = \"pool-driver\"\npath = \"p\"\n", []string{"lvm"}},
		{"an empty plugins table: none", "[plugins]\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.toml), "t.toml")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.PluginOrder, tt.want) {
				t.Errorf("plugins %v, want %v", cfg.PluginOrder, tt.want)
			}
		})
	}
}

func TestFileOverridesOnlyWhatItSets(t *testing.T) {
	def, err := Parse([]byte(DefaultText()), DefaultSource)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"", "# nothing\n", "[daemon]\n"} {
		cfg, err := Parse([]byte(text), "empty.toml")
		if err != nil {
			t.Fatalf("Parse(%q): %v", text, err)
		}
		if cfg.Daemon != def.Daemon {
			t.Errorf("Parse(%q).Daemon = %+v, want the default %+v", text, cfg.Daemon, def.Daemon)
		}
	}
	cfg, err := Parse([]byte("[daemon]\nlog_level = \"debug\"\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := def.Daemon
	want.LogLevel = "debug"
	if cfg.Daemon != want {
		t.Errorf("Daemon = %+v, want %+v", cfg.Daemon, want)
	}
	if cfg.Daemon.HCLogLevel() != hclog.Debug || cfg.Source != "t.toml" {
		t.Errorf("level %v source %q", cfg.Daemon.HCLogLevel(), cfg.Source)
	}
}

func TestLoadResolvesPaths(t *testing.T) {
	root := t.TempDir()
	cwd := filepath.Join(root, "cwd")
	etc := filepath.Join(root, "etc", "qubesd")
	for _, d := range []string{cwd, etc} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const text = `[daemon]
data_dir = "data"            # relative to the file's directory
plugin_dir = "../plugins"    # same
# run_dir is inherited from the default: relative to the working directory

[plugins.file]
kind = "pool-driver"
path = "qubesd-pool-file"    # relative to plugin_dir

[plugins.block]
kind = "extension"
path = "/opt/qubesd/ext-block"
`
	file := filepath.Join(etc, "qubesd.toml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(cwd)

	for _, path := range []string{file, "../etc/qubesd/qubesd.toml"} {
		cfg, err := Load(path)
		if err != nil {
			t.Fatalf("Load(%q): %v", path, err)
		}
		if cfg.Source != path {
			t.Errorf("Source = %q, want %q", cfg.Source, path)
		}
		for _, c := range []struct{ what, got, want string }{
			{"data_dir", cfg.Daemon.DataDir, filepath.Join(etc, "data")},
			{"plugin_dir", cfg.Daemon.PluginDir, filepath.Join(root, "etc", "plugins")},
			{"run_dir", cfg.Daemon.RunDir, filepath.Join(cwd, "_run")},
			{"store", cfg.Daemon.StorePath(), filepath.Join(etc, "data", "qubes.xml")},
			{"socket", cfg.Daemon.SocketPath(), filepath.Join(cwd, "_run", "qubesd.sock")},
		} {
			if c.got != c.want {
				t.Errorf("Load(%q): %s = %q, want %q", path, c.what, c.got, c.want)
			}
		}
		for name, want := range map[string]string{
			"file":  filepath.Join(root, "etc", "plugins", "qubesd-pool-file"),
			"block": "/opt/qubesd/ext-block",
		} {
			if got, err := cfg.PluginPath(name); err != nil || got != want {
				t.Errorf("PluginPath(%q) = %q, %v; want %q", name, got, err, want)
			}
		}
		if _, err := cfg.PluginPath("nope"); err == nil || err.Error() != `config: no plugin "nope" (configured: file, block)` {
			t.Errorf("PluginPath(nope) error = %v", err)
		}
	}

	// Resolve on a parsed config joins everything relative to baseDir.
	cfg, err := Parse([]byte(text), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Resolve("/srv"); err != nil {
		t.Fatal(err)
	}
	if cfg.Daemon.DataDir != "/srv/data" || cfg.Daemon.RunDir != "/srv/_run" || cfg.Daemon.PluginDir != "/plugins" {
		t.Errorf("Resolve(/srv): %+v", cfg.Daemon)
	}

	if _, err := Load(filepath.Join(root, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v", err)
	}
}

func TestSocketPathTooLong(t *testing.T) {
	long := "/" + strings.Repeat("r", 90)
	cfg, err := Parse([]byte("[daemon]\nrun_dir = \""+long+"\"\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := `t.toml: daemon.run_dir = "` + long + `": socket path "` + long + `/qubesd.internal.sock" is 112 bytes; a unix socket path must be at most 107`
	if err := cfg.Resolve("/"); err == nil || err.Error() != want {
		t.Errorf("Resolve error:\n%v\nwant:\n%s", err, want)
	}
}

func TestPluginOrder(t *testing.T) {
	const text = `
[plugins.zeta.config]   # defined before its parent table
x = 1
[plugins.zeta]
kind = "extension"
path = "z"

[plugins.alpha]
kind = "pool-driver"
path = "a"

[plugins.mid]
kind = "extension"
path = "m"

[plugins.beta]
kind = "extension"
path = "b"
`
	for range 20 { // map order is random; file order must win every time
		cfg, err := Parse([]byte(text), "t.toml")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"zeta", "alpha", "mid", "beta"}; !reflect.DeepEqual(cfg.PluginOrder, want) {
			t.Fatalf("PluginOrder = %v, want %v", cfg.PluginOrder, want)
		}
		var ext []string
		for _, p := range cfg.PluginsOfKind(Extension) {
			ext = append(ext, p.Name)
		}
		if want := []string{"zeta", "mid", "beta"}; !reflect.DeepEqual(ext, want) {
			t.Fatalf("extensions = %v, want %v", ext, want)
		}
		if pools := cfg.PluginsOfKind(PoolDriver); len(pools) != 1 || pools[0].Name != "alpha" || pools[0].Path != "a" {
			t.Fatalf("pool drivers = %+v", pools)
		}
	}
}

func TestPluginConfigIsRaw(t *testing.T) {
	const text = `[plugins.file]
kind = "pool-driver"
path = "p"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[plugins.file.config]
dir = "/var/lib/qubes"
revisions = 3
ratio = 0.5
sparse = true
tags = ["a", "b"]
[plugins.file.config.nested]
k = "v"

[plugins.bare]
kind = "extension"
path = "e"
`
	cfg, err := Parse([]byte(text), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"dir": "/var/lib/qubes", "revisions": int64(3), "ratio": 0.5, "sparse": true,
		"tags": []any{"a", "b"}, "nested": map[string]any{"k": "v"},
	}
	if got := cfg.Plugins["file"].Config; !reflect.DeepEqual(got, want) {
		t.Errorf("config = %#v\nwant %#v", got, want)
	}
	if got := cfg.Plugins["bare"].Config; got == nil || len(got) != 0 {
		t.Errorf("config of a plugin without one = %#v, want an empty map", got)
	}
}

func TestSyntaxError(t *testing.T) {
	tests := []struct {
		name, toml string
		line       int
	}{
		{"bare value", "[daemon]\nlog_level = \"info\"\nlog_format = json\n", 3},
		{"duplicate key", "[daemon]\nlog_level = \"info\"\n\nlog_level = \"debug\"\n", 4},
		{"double equals", "[daemon]\n\nlog_level = = \"info\"\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.toml), "t.toml")
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			if ce.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", ce.Line, tt.line, err)
			}
			prefix := "t.toml:" + strconv.Itoa(tt.line) + ": syntax error: "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			var pe toml.ParseError
			if !errors.As(err, &pe) || pe.Position.Line != tt.line {
				t.Errorf("no toml.ParseError at line %d in %v", tt.line, err)
			}
			t.Log(err)
		})
	}
}

func TestHCLogLevel(t *testing.T) {
	for level, want := range map[string]hclog.Level{
		"trace": hclog.Trace, "debug": hclog.Debug, "info": hclog.Info,
		"warn": hclog.Warn, "error": hclog.Error, "loud": hclog.NoLevel,
	} {
		d := DaemonConfig{LogLevel: level}
		if got := d.HCLogLevel(); got != want {
			t.Errorf("HCLogLevel(%q) = %v, want %v", level, got, want)
		}
	}
}

func TestValidateInCode(t *testing.T) {
	cfg, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Daemon.LogLevel = "verbose"
	cfg.Plugins["x"] = Plugin{Kind: "driver", Path: "x"}
	cfg.PluginOrder = append(cfg.PluginOrder, "x")
	want := []string{
		`<default config>: daemon.log_level = "verbose": must be one of trace, debug, info, warn, error`,
		`<default config>: plugins.x.kind = "driver": must be "pool-driver" or "extension"`,
	}
	if got := problems(t, cfg.Validate()); !reflect.DeepEqual(got, want) {
		t.Errorf("Validate:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(DefaultText()))
	f.Add([]byte("[plugins.a]\nkind = \"extension\"\npath = \"p\"\n[plugins.a.config]\nx = '''\n[y]\n'''\n"))
	f.Add([]byte("a.b.\"c=d\" = { e = [1, {f = 2}] }\n[[t]]\nx = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.toml")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
	})
}

// docs/config.md's example is a valid configuration and names every key.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Skipf("no configuration reference to check: %v", err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) == 0 {
		t.Fatal("docs/config.md has no toml example")
	}
	for i, b := range blocks {
		if _, err := Parse(b[1], "docs/config.md example "+strconv.Itoa(i+1)); err != nil {
			t.Errorf("%v", err)
		}
	}
	for _, k := range append(append([]string{}, daemonKeys...), pluginKeys...) {
		if !strings.Contains(string(doc), "- `"+k+"`") {
			t.Errorf("docs/config.md does not describe %q", k)
		}
	}
}
