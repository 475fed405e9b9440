package lifecycle_test

import (
	"errors"
	"os"
	"testing"

	"github.com/qubesgo/qubesd/core/vmm"
)

// TestRemoveForgets: admin.vm.Remove of a qube that has run leaves neither
// its libvirt definition nor its directory behind.
func TestRemoveForgets(t *testing.T) {
	e := startEnv(t)
	q := e.newQube(t, "rmme")
	e.call(t, "admin.vm.Start", q.Name(), "", "")
	e.call(t, "admin.vm.Kill", q.Name(), "", "")
	dir := q.DirPath()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/console.log", []byte("boot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := vmmConn(t).Lookup(q.Name()); err != nil {
		t.Fatalf("the stopped qube's domain is not defined (%v); the test needs it", err)
	}
	e.call(t, "admin.vm.Remove", q.Name(), "", "")
	if _, err := vmmConn(t).Lookup(q.Name()); !errors.Is(err, vmm.ErrNoDomain) {
		t.Errorf("the removed qube's domain is still defined (%v)", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the removed qube's directory %s is still there (%v)", dir, err)
	}
}
