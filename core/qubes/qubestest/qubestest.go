// Package qubestest gives tests a model to work on: the reference
// implementation's qubes.xml from shared/fixtures, or a generated store,
// loaded with its data directory mapped to a temporary one that has the
// kernel those stores name. (core/qubes's own tests cannot import it; they
// have the same few lines.)
package qubestest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/store"
)

// RefDataDir is the data directory the reference's files name; tests map
// it to their own.
const RefDataDir = "/var/lib/qubes"

// Kernel is the kernel the fixture and generated stores name.
const Kernel = "6.6.0-baseline"

// Fixture returns the path of shared/fixtures/name. shared/ sits beside the
// repository (as in CI), so it is looked for in the parents of the test's
// directory.
func Fixture(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "shared", "fixtures", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if dir == filepath.Dir(dir) {
			t.Fatalf("fixture %s not found: shared/fixtures must sit beside the repository", name)
		}
	}
}

// MakeDataDir prepares dir as a data directory with Kernel installed.
func MakeDataDir(dir string) error {
	k := filepath.Join(dir, "vm-kernels", Kernel)
	if err := os.MkdirAll(k, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"vmlinuz", "initramfs", "modules.img"} {
		if err := os.WriteFile(filepath.Join(k, f), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// DataDir returns a fresh temporary data directory with Kernel installed.
func DataDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := MakeDataDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Mapped returns qubes.xml text with RefDataDir replaced by dir.
func Mapped(xml []byte, dir string) []byte {
	return bytes.ReplaceAll(xml, []byte(RefDataDir), []byte(dir))
}

// Options are the model options of the host the fixtures were recorded on:
// 16 GiB, 2 CPUs, a dom0 of 4 GiB.
func Options(dir string) qubes.Options {
	return qubes.Options{DataDir: dir, HostMemoryMiB: 16384, HostCPUs: 2, AdminMaxMemMiB: 4096}
}

// Load loads qubes.xml text (already mapped to dir) and fails the test if a
// record is quarantined.
func Load(t testing.TB, xml []byte, dir string) *qubes.App {
	t.Helper()
	doc, err := store.Decode(xml)
	if err != nil {
		t.Fatal(err)
	}
	app, rep, err := qubes.Load(doc, Options(dir))
	if err != nil || len(rep.Quarantined) > 0 {
		t.Fatalf("load: %v, quarantined %v", err, rep.Quarantined)
	}
	return app
}

// FixtureModel loads shared/fixtures/name into a fresh data directory and
// returns the model and the directory.
func FixtureModel(t testing.TB, name string) (*qubes.App, string) {
	t.Helper()
	raw, err := os.ReadFile(Fixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	dir := DataDir(t)
	return Load(t, Mapped(raw, dir), dir), dir
}

// GeneratedModel loads store.GenerateDocument(n) — dom0, debian-12-xfce,
// sys-net, sys-firewall and vm0001…vm<n> — into a fresh data directory.
func GeneratedModel(t testing.TB, n int) (*qubes.App, string) {
	t.Helper()
	dir := DataDir(t)
	return Load(t, Mapped(store.Encode(store.GenerateDocument(n)), dir), dir), dir
}
