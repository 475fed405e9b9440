package filepool

import (
	"testing"

	"github.com/qubesgo/qubesd/plugins/pool-file/internal/ptest"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// drivers are the two drivers, for table-driven tests.
var drivers = []struct {
	name string
	new  func() pool.Driver
}{
	{ReflinkName, func() pool.Driver { return NewReflink() }},
	{FileName, func() pool.Driver { return NewFile() }},
}

// TestConformance runs the conformance suite on both drivers in-process,
// on the machine's file system (sparse copies) and on btrfs (reflinks).
// The plugin binaries' tests run it over gRPC.
func TestConformance(t *testing.T) {
	for _, fs := range ptest.Filesystems {
		for _, d := range drivers {
			t.Run(d.name+"/"+fs.Name, func(t *testing.T) {
				ptest.Conformance(t, d.new(), d.name, fs, fs.Root(t))
			})
		}
	}
}
