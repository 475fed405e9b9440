package api

import (
	"context"
	"strings"
	"testing"
)

// TestGetAllBulk: the bulk reply is, for every qube in admin.vm.List order,
// its admin.vm.List line, its admin.vm.property.GetAll lines and an empty
// line — exactly what the per-qube calls answer.
func TestGetAllBulk(t *testing.T) {
	s, _ := replayServer(t)
	call := func(method, dest string) string {
		r := string(s.Call(context.Background(), []byte(method+"+ dom0 name "+dest+"\x00")))
		if !strings.HasPrefix(r, "0\x00") {
			t.Fatalf("%s %s: %q", method, dest, r)
		}
		return r[2:]
	}
	var want strings.Builder
	for _, line := range strings.SplitAfter(call("admin.vm.List", "dom0"), "\n") {
		if line == "" {
			continue
		}
		want.WriteString(line)
		want.WriteString(call("admin.vm.property.GetAll", strings.Fields(line)[0]))
		want.WriteString("\n")
	}
	if got := call("admin.vm.property.GetAllBulk", "dom0"); got != want.String() {
		t.Errorf("bulk reply differs from the per-qube calls:\n%s", got)
	}
	if r := string(s.Call(context.Background(), []byte("admin.vm.property.GetAllBulk+ dom0 name vm0001\x00"))); r != "2\x00ProtocolError\x00\x00expected destination to be AdminVM\x00" {
		t.Errorf("bulk on a qube: %q", r)
	}
}

// TestGetAllBulkSelected: with property names as payload, each qube's
// block holds just those lines (duplicates once, names a class lacks
// skipped).
func TestGetAllBulkSelected(t *testing.T) {
	s, _ := replayServer(t)
	r := string(s.Call(context.Background(), []byte("admin.vm.property.GetAllBulk+ dom0 name dom0\x00netvm label netvm")))
	if !strings.HasPrefix(r, "0\x00dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\nlabel default=False type=label black\n\n") {
		t.Fatalf("dom0 block: %q", r[:min(len(r), 200)])
	}
	if !strings.Contains(r, "\nvm0001 class=AppVM state=Halted uuid=01df9a1f-44de-4e7b-a0b9-7147d1b02387\nnetvm default=True type=vm sys-firewall\nlabel default=False type=label orange\n\n") {
		t.Errorf("vm0001 block missing or wrong:\n%s", r)
	}
	if got := strings.Count(r, "\n\n"); got != 14 {
		t.Errorf("%d blocks, want 14", got)
	}
}
