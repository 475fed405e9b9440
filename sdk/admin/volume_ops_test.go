package admin

import (
	"context"
	"errors"
	"testing"
)

func TestVolumeOps(t *testing.T) {
	c, r := newReplayServer(t)
	ctx := context.Background()
	revs, err := c.VolumeRevisions(ctx, "vm0001", "private")
	if err != nil || len(revs) != 0 {
		t.Errorf("VolumeRevisions = %v, %v", revs, err)
	}
	if _, err := c.VolumeRevisions(ctx, "vm0001", "nosuchvol"); !IsType(err, TypePermissionDenied) {
		t.Errorf("VolumeRevisions(nosuchvol): %v", err)
	}
	if err := c.RevertVolume(ctx, "vm0001", "private", "nosuchrevision"); !errors.Is(err, ErrEmptyReply) {
		t.Errorf("RevertVolume(nosuchrevision): %v", err)
	}
	if err := c.RevertVolume(ctx, "vm0001", "private", "bad/rev"); !IsType(err, TypeProtocolError) {
		t.Errorf("RevertVolume(bad/rev): %v", err)
	}
	if err := c.ResizeVolume(ctx, "vm0001", "private", 4294967296); err != nil {
		t.Error(err)
	}
	if err := c.ResizeVolume(ctx, "vm0001", "private", -1); err == nil {
		t.Error("ResizeVolume(-1): no error")
	}
	if err := c.ClearVolume(ctx, "newvm3", "private"); err != nil {
		t.Error(err)
	}
	err = c.VolumeCloneTo(ctx, "vm0001", "private", "notatoken")
	if !IsType(err, "QubesVolumeCopyTokenNotFoundError") {
		t.Errorf("VolumeCloneTo(notatoken): %v", err)
	}
	if err := c.SetVolumeRevisionsToKeep(ctx, "vm0001", "private", 2); err != nil {
		t.Error(err)
	}
	if err := c.SetVolumeEphemeral(ctx, "vm0001", "volatile", true); err != nil {
		t.Error(err)
	}
	if err := c.SetVolumeRW(ctx, "newvm3", "root", false); err != nil {
		t.Error(err)
	}
	if err := c.SetVolumeOption(ctx, "vm0001", "private", "rw", "maybe"); !IsType(err, TypeProtocolError) {
		t.Errorf("SetVolumeOption(rw, maybe): %v", err)
	}
	if err := c.SetVolumeOption(ctx, "vm0001", "private", "a b", "x"); err == nil {
		t.Error("SetVolumeOption with a space: no error")
	}
	if len(r.misses) > 0 {
		t.Errorf("unanswered requests: %v", r.misses)
	}
}

func TestCloneVolume(t *testing.T) {
	c, rec := newRecorder(t, "0\x00Abc123tokenXYZ")
	ctx := context.Background()
	if err := c.CloneVolume(ctx, "src", "private", "dst", "private"); err != nil {
		t.Fatal(err)
	}
	if len(rec.reqs) != 2 {
		t.Fatalf("%d requests", len(rec.reqs))
	}
	if got := string(rec.reqs[0]); got != "admin.vm.volume.CloneFrom+private dom0 name src\x00" {
		t.Errorf("CloneFrom request = %q", got)
	}
	if got := string(rec.reqs[1]); got != "admin.vm.volume.CloneTo+private dom0 name dst\x00Abc123tokenXYZ" {
		t.Errorf("CloneTo request = %q", got)
	}
	rec.reply = []byte("2\x00QubesVolumeCopyInUseError\x00\x00in use\x00")
	if err := c.CloneVolume(ctx, "src", "private", "dst", "private"); !IsType(err, "QubesVolumeCopyInUseError") || len(rec.reqs) != 3 {
		t.Errorf("CloneVolume: %v after %d requests", err, len(rec.reqs))
	}
}
