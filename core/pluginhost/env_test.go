package pluginhost

import (
	"slices"
	"testing"
)

func TestPluginEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"defaults", nil, []string{
			"GOMAXPROCS=1", "LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR=/run/p/tmp"}},
		{"the config adds and replaces", map[string]string{"GOMAXPROCS": "4", "LVM_SUPPRESS_FD_WARNINGS": "1"}, []string{
			"GOMAXPROCS=4", "LANG=C.UTF-8", "LVM_SUPPRESS_FD_WARNINGS=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR=/run/p/tmp"}},
		{"TMPDIR is always the private one", map[string]string{"TMPDIR": "/tmp"}, []string{
			"GOMAXPROCS=1", "LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR=/run/p/tmp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pluginEnv("/run/p/tmp", tt.env); !slices.Equal(got, tt.want) {
				t.Errorf("pluginEnv = %q, want %q", got, tt.want)
			}
		})
	}
}
