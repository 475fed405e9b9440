package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/qubesgo/qubesd/core/qerr"
)

func TestImport(t *testing.T) {
	for _, c := range []struct {
		name    string
		success bool
		want    string
	}{
		{"commit", true, "imported"},
		{"abort", false, "before"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			v := e.vol("vm0001", "private")
			e.ok(e.m.Create(e.ctx, v), "Create")
			e.ok(e.d.SetContent(v.Pool.Name, v.Spec.VID, []byte("before")), "SetContent")
			path, err := e.m.ImportBegin(e.ctx, v, 1<<20)
			e.ok(err, "ImportBegin")
			if _, err := os.Stat(filepath.Join(e.stateDir, journalName)); err != nil {
				t.Errorf("the import is not journalled: %v", err)
			}
			// Every other operation is refused meanwhile.
			_, err = e.m.Info(e.ctx, v)
			wantErr(t, err, qerr.StoragePoolError, "an import is in progress", "vm0001")
			_, err = e.m.ImportBegin(e.ctx, v, 0)
			wantErr(t, err, qerr.StoragePoolError, "an import is in progress")
			wantErr(t, e.m.Clone(e.ctx, v, e.origin("x"), nil), qerr.StoragePoolError, "an import is in progress")
			e.ok(os.WriteFile(path, []byte("imported"), 0o600), "writing the import")
			e.ok(e.m.ImportEnd(e.ctx, v, c.success), "ImportEnd")
			if got := string(bytes.TrimRight(e.d.Content(v.Pool.Name, v.Spec.VID), "\x00")); got != c.want {
				t.Errorf("content %q, want %q", got, c.want)
			}
			wantSize := v.Spec.Size
			if c.success {
				wantSize = 1 << 20
			}
			if got := e.vol("vm0001", "private").Spec.Size; got != wantSize {
				t.Errorf("recorded size %d, want %d", got, wantSize)
			}
			if _, err := os.Stat(filepath.Join(e.stateDir, journalName)); !os.IsNotExist(err) {
				t.Errorf("the journal is still there: %v", err)
			}
			_, err = e.m.Info(e.ctx, v)
			e.ok(err, "Info after the import")
			e.ok(e.m.ImportEnd(e.ctx, v, false), "ImportEnd without an import")
		})
	}
}

func TestImportRefusals(t *testing.T) {
	e := newEnv(t)
	_, err := e.m.ImportBegin(e.ctx, e.vol("vm0001", "root"), 0)
	wantErr(t, err, qerr.StoragePoolError, "nothing to import into")
	e.d.Caps.Import = false
	_, err = e.m.ImportBegin(e.ctx, e.vol("vm0001", "private"), 0)
	wantErr(t, err, qerr.StoragePoolError, "cannot import")
	e.d.Caps.Import = true
	v := e.vol("vm0001", "private")
	e.ok(e.m.Create(e.ctx, v), "Create")
	e.d.Fail("ImportBegin", v.Spec.VID, errInjected)
	_, err = e.m.ImportBegin(e.ctx, v, 0)
	wantErr(t, err, qerr.StoragePoolError, "injected failure")
	if _, ok := e.m.ImportInProgress(v); ok {
		t.Error("a failed ImportBegin left the volume marked")
	}
}

func TestCleanupAbandonedImports(t *testing.T) {
	e := newEnv(t)
	v := e.vol("vm0001", "private")
	e.ok(e.m.Create(e.ctx, v), "Create")
	e.ok(e.d.SetContent(v.Pool.Name, v.Spec.VID, []byte("committed")), "SetContent")
	path, err := e.m.ImportBegin(e.ctx, v, 0)
	e.ok(err, "ImportBegin")
	e.ok(os.WriteFile(path, []byte("half-written"), 0o600), "writing")

	// The daemon dies here; a new one starts with the same state dir.
	e.m = e.newManager()
	_, err = e.m.Info(e.ctx, v)
	wantErr(t, err, qerr.StoragePoolError, "an import is in progress", "earlier run")

	// Its pool is down at first: the import stays, and a retry ends it.
	e.d.SetOffline("varlibqubes", true)
	wantErr(t, e.m.CleanupAbandonedImports(e.ctx), qerr.StoragePoolError, "vm0001:private")
	if !e.d.Importing(v.Pool.Name, v.Spec.VID) {
		t.Fatal("the driver's import ended although the pool was down")
	}
	e.d.SetOffline("varlibqubes", false)
	e.ok(e.m.CleanupAbandonedImports(e.ctx), "CleanupAbandonedImports")
	if e.d.Importing(v.Pool.Name, v.Spec.VID) {
		t.Error("the abandoned import is still in progress in the driver")
	}
	if got := string(bytes.TrimRight(e.d.Content(v.Pool.Name, v.Spec.VID), "\x00")); got != "committed" {
		t.Errorf("content %q after the cleanup, want the committed one", got)
	}
	if _, err := os.Stat(filepath.Join(e.stateDir, journalName)); !os.IsNotExist(err) {
		t.Errorf("the journal is still there: %v", err)
	}
	_, err = e.m.Info(e.ctx, v)
	e.ok(err, "Info after the cleanup")

	// A later cleanup leaves this run's imports alone.
	_, err = e.m.ImportBegin(e.ctx, v, 0)
	e.ok(err, "ImportBegin")
	e.ok(e.m.CleanupAbandonedImports(e.ctx), "CleanupAbandonedImports")
	if !e.d.Importing(v.Pool.Name, v.Spec.VID) {
		t.Error("the cleanup ended an import of this run")
	}
}

func TestCorruptJournalSetAside(t *testing.T) {
	e := newEnv(t)
	e.ok(os.WriteFile(filepath.Join(e.stateDir, journalName), []byte("{not json"), 0o600), "writing")
	e.m = e.newManager()
	e.ok(e.m.CleanupAbandonedImports(e.ctx), "CleanupAbandonedImports")
	matches, _ := filepath.Glob(filepath.Join(e.stateDir, journalName+".bad-*"))
	if len(matches) != 1 {
		t.Errorf("the bad journal was not set aside: %v", matches)
	}
}
