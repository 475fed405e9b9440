package main

import (
	"testing"

	"github.com/qubesgo/qubesd/plugins/pool-file/internal/ptest"
)

// TestConformanceOverGRPC builds this plugin, launches it as qubesd does
// and runs the conformance suite against the daemon-side client, on the
// machine's file system and on btrfs.
func TestConformanceOverGRPC(t *testing.T) {
	drv := ptest.Launch(t, ".")
	info, err := drv.Info(t.Context())
	if err != nil || info.Name != "file-reflink" {
		t.Fatalf("Info over gRPC: %+v, %v", info, err)
	}
	for _, fs := range ptest.Filesystems {
		t.Run(fs.Name, func(t *testing.T) {
			ptest.Conformance(t, drv, "file-reflink", fs, fs.Root(t))
		})
	}
}
