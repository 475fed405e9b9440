package lifecycle

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHostTimezone(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		target string // "" for a regular file, not a link
		want   string
	}{
		{"zoneinfo link", "/usr/share/zoneinfo/Europe/Warsaw", "Europe/Warsaw"},
		{"relative link", "../usr/share/zoneinfo/UTC", "UTC"},
		{"link elsewhere", "/etc/mytime", ""},
		{"regular file", "", ""},
	}
	defer func(old string) { localtime = old }(localtime)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			localtime = filepath.Join(dir, "localtime"+string(rune('a'+i)))
			var err error
			if tt.target == "" {
				err = os.WriteFile(localtime, []byte("TZif"), 0o644)
			} else {
				err = os.Symlink(tt.target, localtime)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := hostTimezone(); got != tt.want {
				t.Errorf("hostTimezone() = %q, want %q", got, tt.want)
			}
		})
	}
	localtime = filepath.Join(dir, "missing")
	if got := hostTimezone(); got != "" {
		t.Errorf("no /etc/localtime: %q", got)
	}
}
