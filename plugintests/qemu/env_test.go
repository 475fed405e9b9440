package qemu

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
)

// TestEnsureShared checks that parallel Ensure calls share one private
// libvirtd, which stops with the last of them, and that a later Ensure
// starts a fresh one.
func TestEnsureShared(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private libvirtd: skipped under -short")
	}
	var mu sync.Mutex
	uris := map[string]bool{}
	// every caller holds its reference until all have one: otherwise a
	// caller scheduled late could find the first instance already released.
	// Parallel subtests run at most -test.parallel at a time (GOMAXPROCS by
	// default: 2 here), so there are no more callers than that.
	callers := 3
	if f := flag.Lookup("test.parallel"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil {
			callers = min(callers, n)
		}
	}
	if callers < 2 {
		t.Skip("needs two parallel subtests: run with -parallel 2 or more")
	}
	var holding sync.WaitGroup
	holding.Add(callers)
	t.Run("group", func(t *testing.T) {
		for i := 0; i < callers; i++ {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				var once sync.Once
				defer once.Do(holding.Done) // a caller that skips or fails frees the others
				env := Ensure(t)
				env.MustVirsh(t, "list", "--all")
				mu.Lock()
				uris[env.Dir] = true
				mu.Unlock()
				once.Do(holding.Done)
				holding.Wait()
			})
		}
	})
	if len(uris) != 1 {
		t.Fatalf("parallel Ensure calls got %d instances, want 1", len(uris))
	}
	for dir := range uris {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still there after the last release (%v)", dir, err)
		}
		env := Ensure(t)
		if env.Dir == dir {
			t.Errorf("a released instance was reused")
		}
		env.MustVirsh(t, "version")
	}
}
