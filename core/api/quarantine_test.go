package api

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/core/store"
)

// TestQuarantineList: a qube whose record does not load is listed with its
// class and the reason; the others are served as usual.
func TestQuarantineList(t *testing.T) {
	dir := qubestest.DataDir(t)
	raw, err := os.ReadFile(fixture(t, "qubes-n10.xml"))
	if err != nil {
		t.Fatal(err)
	}
	xml := strings.ReplaceAll(string(raw), refBase, dir)
	xml = strings.Replace(xml, `<property name="name">vm0005</property>`,
		`<property name="name">vm0005</property>`+"\n        <property name=\"memory\">lots</property>", 1)
	doc, err := store.Decode([]byte(xml))
	if err != nil {
		t.Fatal(err)
	}
	app, _, err := qubes.Load(doc, qubes.Options{DataDir: dir, HostMemoryMiB: 16384, HostCPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{App: app})
	got := string(s.Call(context.Background(), []byte("admin.vm.quarantine.List+ dom0 name dom0\x00")))
	want := "0\x00vm0005 class=AppVM error=property memory = \"lots\": Failed to parse property value as int\n"
	if got != want {
		t.Errorf("quarantine.List:\n got %q\nwant %q", got, want)
	}
	if r := string(s.Call(context.Background(), []byte("admin.vm.property.Get+memory dom0 name vm0005\x00"))); r != "2\x00QubesVMNotFoundError\x00\x00No such domain: 'vm0005'\x00" {
		t.Errorf("a quarantined qube is not usable: %q", r)
	}
	if r := string(s.Call(context.Background(), []byte("admin.vm.property.Get+memory dom0 name vm0006\x00"))); r != "0\x00default=True type=int 400" {
		t.Errorf("the others are served: %q", r)
	}
}
