package qemu

import (
	"fmt"
	"os"
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
	t.Run("group", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				env := Ensure(t)
				env.MustVirsh(t, "list", "--all")
				mu.Lock()
				uris[env.Dir] = true
				mu.Unlock()
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
