package main

import (
	"reflect"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1024": 1024, " 7 ": 7, "10GiB": 10 << 30, "10gib": 10 << 30, "10Gi": 10 << 30, "10G": 10e9, "10GB": 10e9,
		"5K": 5000, "5KB": 5000, "5Ki": 5120, "5KiB": 5120, "3M": 3e6, "3MB": 3e6, "3Mi": 3 << 20, "3MiB": 3 << 20,
		"2 GiB": 2 << 30, "+4K": 4000, "0": 0,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"lots": "Invalid size: LOTS.", "10T": "Invalid size: 10T.", "": "Invalid size: .", "-5G": "Invalid size: -5G.",
		"G": "Invalid size: G.", "1.5G": "Invalid size: 1.5G.", "99999999999GiB": "Invalid size: 99999999999GIB.",
	} {
		if _, err := parseSize(in); err == nil || err.Error() != msg {
			t.Errorf("parseSize(%q): error %v, want %q", in, err, msg)
		}
	}
}

func TestParseVolumeRef(t *testing.T) {
	r, err := parseVolumeRef("work:private")
	if err != nil || r != (volumeRef{"work", "private"}) || r.String() != "work:private" {
		t.Errorf("parseVolumeRef = %v, %v", r, err)
	}
	if r, err := parseVolumeRef("work:"); err != nil || r != (volumeRef{"work", ""}) {
		t.Errorf("parseVolumeRef(work:) = %v, %v", r, err)
	}
	for _, bad := range []string{"work", "a:b:c", ""} {
		if _, err := parseVolumeRef(bad); err == nil || err.(*exitError).code != 2 {
			t.Errorf("parseVolumeRef(%q): %v", bad, err)
		}
	}
}

func TestParsePoolOptions(t *testing.T) {
	got, err := parsePoolOptions([]string{"dir_path=/a=b", "x=", "revisions_to_keep=3"})
	want := [][2]string{{"dir_path", "/a=b"}, {"x", ""}, {"revisions_to_keep", "3"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parsePoolOptions = %v, %v", got, err)
	}
	for _, bad := range []string{"novalue", "=x"} {
		if _, err := parsePoolOptions([]string{bad}); err == nil {
			t.Errorf("parsePoolOptions(%q): no error", bad)
		}
	}
}

func TestPoolLegacyCommand(t *testing.T) {
	for _, c := range []struct {
		o       poolOptions
		args    []string
		sub     string
		subArgs []string
		opts    []string
	}{
		{poolOptions{list: true, format: "text"}, nil, "list", nil, nil},
		{poolOptions{helpDrivers: true, format: "text"}, nil, "drivers", nil, nil},
		{poolOptions{info: "p", format: "text"}, nil, "info", []string{"p"}, nil},
		{poolOptions{remove: "p", format: "text"}, nil, "remove", []string{"p"}, nil},
		{poolOptions{set: "p", options: []string{"a=1,b=2", "c=3"}, format: "text"}, nil, "set", []string{"p"}, []string{"a=1", "b=2", "c=3"}},
		{poolOptions{add: []string{"p"}, format: "text"}, []string{"file"}, "add", []string{"p", "file"}, nil},
		{poolOptions{add: []string{"p", "file"}, format: "text"}, nil, "add", []string{"p", "file"}, nil},
	} {
		sub, args, err := c.o.legacyCommand(c.args)
		if err != nil || sub != c.sub || !reflect.DeepEqual(args, c.subArgs) || !reflect.DeepEqual(c.o.options, c.opts) {
			t.Errorf("legacyCommand(%+v) = %s %v (options %v), %v", c.o, sub, args, c.o.options, err)
		}
	}
	for _, o := range []poolOptions{
		{list: true, info: "p", format: "text"},
		{add: []string{"p"}, format: "text"},
		{list: true, format: "json"},
	} {
		if _, _, err := o.legacyCommand(nil); err == nil {
			t.Errorf("legacyCommand(%+v): no error", o)
		}
	}
}

func TestInternalSocket(t *testing.T) {
	tl := &tool{env: env{getenv: func(string) string { return "" }}, socket: "/run/x/qubesd.sock"}
	if got := tl.internalSocket(""); got != "/run/x/qubesd.internal.sock" {
		t.Errorf("internalSocket = %q", got)
	}
	if got := tl.internalSocket("/a.sock"); got != "/a.sock" {
		t.Errorf("internalSocket(flag) = %q", got)
	}
	tl.env.getenv = func(k string) string {
		if k == InternalSocketEnv {
			return "/env.sock"
		}
		return ""
	}
	if got := tl.internalSocket(""); got != "/env.sock" {
		t.Errorf("internalSocket(env) = %q", got)
	}
}
