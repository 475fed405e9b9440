package storagetest_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/qubesgo/qubesd/core/storage/storagetest"
	"github.com/qubesgo/qubesd/sdk/pool"
	"github.com/qubesgo/qubesd/sdk/pooltest"
)

func TestConformance(t *testing.T) {
	var n atomic.Int64
	pooltest.Run(t, func(t *testing.T) (pool.Driver, pool.Pool) {
		return storagetest.NewMemDriver(t.TempDir()), pool.Pool{Name: fmt.Sprintf("mem%d", n.Add(1)), Config: map[string]string{}}
	})
}

// Without the optional capabilities the suite skips what needs them, and
// the driver still passes.
func TestConformanceMinimal(t *testing.T) {
	var n atomic.Int64
	pooltest.Run(t, func(t *testing.T) (pool.Driver, pool.Pool) {
		d := storagetest.NewMemDriver(t.TempDir())
		d.Caps = pool.Capabilities{}
		return d, pool.Pool{Name: fmt.Sprintf("min%d", n.Add(1)), Config: map[string]string{storagetest.KeySize: "1073741824"}}
	})
}
