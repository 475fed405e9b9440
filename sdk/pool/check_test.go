package pool

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestValidateVID(t *testing.T) {
	for _, vid := range []string{"a", "appvms/work/private", "qubes_dom0/vm-work-private", "vm-templates/fedora-40/root", "a.b:c+d@e-f_g", "..."} {
		if err := ValidateVID(vid); err != nil {
			t.Errorf("ValidateVID(%q): %v", vid, err)
		}
	}
	for _, vid := range []string{"", "/a", "a/", "a//b", "..", "a/../b", "./a", "a b", "a\x00b", `a\b`, "a%2Fb", "é"} {
		if err := ValidateVID(vid); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateVID(%q) = %v, want ErrInvalid", vid, err)
		}
	}
}

func TestVolumeValidate(t *testing.T) {
	ok := []Volume{
		{VID: "a", SaveOnStop: true, RevisionsToKeep: -1},
		{VID: "a", SnapOnStart: true, SourceVID: "b"},
		{VID: "a"},
	}
	for _, v := range ok {
		if err := v.Validate(); err != nil {
			t.Errorf("%+v: %v", v, err)
		}
	}
	bad := []Volume{
		{VID: "a", RevisionsToKeep: -2},
		{VID: "a", SnapOnStart: true},
		{VID: "a", SourceVID: "b"},
		{VID: "a", SnapOnStart: true, SourceVID: "a"},
		{VID: "a", SnapOnStart: true, SourceVID: "../b"},
		{VID: "../a"},
	}
	for _, v := range bad {
		if err := v.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", v, err)
		}
	}
}

func TestVolumeType(t *testing.T) {
	for _, c := range []struct {
		snap, save bool
		want       VolumeType
		name       string
	}{
		{false, false, Volatile, "volatile"},
		{true, false, Snapshot, "snapshot"},
		{false, true, Origin, "origin"},
		{true, true, OriginSnapshot, "origin_snapshot"},
	} {
		v := Volume{SnapOnStart: c.snap, SaveOnStop: c.save}
		if v.Type() != c.want || v.Type().String() != c.name {
			t.Errorf("snap_on_start=%v save_on_stop=%v: %v, want %v", c.snap, c.save, v.Type(), c.name)
		}
	}
}

func TestDecodeConfig(t *testing.T) {
	var cfg struct {
		Sudo bool   `json:"sudo"`
		Path string `json:"path"`
	}
	for _, empty := range []string{"", "  ", "{}"} {
		if err := DecodeConfig([]byte(empty), &cfg); err != nil {
			t.Errorf("DecodeConfig(%q): %v", empty, err)
		}
	}
	if err := DecodeConfig([]byte(`{"sudo": true, "path": "/x"}`), &cfg); err != nil || !cfg.Sudo || cfg.Path != "/x" {
		t.Errorf("DecodeConfig: %+v, %v", cfg, err)
	}
	err := DecodeConfig([]byte(`{"sudo": true, "colour": "red"}`), &cfg)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"colour"`) {
		t.Errorf("unknown key: %v, want ErrInvalid naming the key", err)
	}
	if err := DecodeConfig([]byte(`{"sudo": "yes"}`), &cfg); !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong type: %v, want ErrInvalid", err)
	}
	if err := (UnimplementedDriver{}).Configure(context.Background(), []byte(`{"x": 1}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("UnimplementedDriver.Configure with a key: %v, want ErrInvalid", err)
	}
}

// TestCheck: the checks run before the driver sees a call.
func TestCheck(t *testing.T) {
	m := &mockDriver{}
	d := Check(m)
	if Check(d) != d {
		t.Error("Check of a checked driver wraps it again")
	}
	ctx := context.Background()
	p := Pool{Name: "p", Config: map[string]string{"dir": "/x"}}
	good := Volume{VID: "a/b", SaveOnStop: true}
	for what, err := range map[string]error{
		"bad vid":         d.Create(ctx, p, Volume{VID: "../a"}),
		"no pool name":    d.Create(ctx, Pool{}, good),
		"resize to 0":     d.Resize(ctx, p, good, 0),
		"bad revision":    d.Revert(ctx, p, good, "a/b"),
		"clone from self": d.CloneFrom(ctx, p, good, good),
		"bad source":      d.CloneFrom(ctx, p, good, Volume{VID: ""}),
		"config refused":  d.Create(ctx, Pool{Name: "p", Config: map[string]string{"refuse": "1"}}, good),
		"malformed JSON":  d.Configure(ctx, []byte("{")),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	if n := len(m.calls); n != 1 || m.calls[0].method != "ValidateConfig" {
		// Only the refused-config case reached the driver, and only its
		// ValidateConfig.
		t.Errorf("the driver saw %v", m.calls)
	}
	if err := d.Create(ctx, p, good); err != nil {
		t.Errorf("a good call: %v", err)
	}
}
