package admin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Operations on the volumes of a qube: admin.vm.volume.ListSnapshots,
// Revert, Resize, Clear, CloneFrom/CloneTo and Set.*.

// VolumeRevisions returns the revisions of volume of vm that it can be
// reverted to (admin.vm.volume.ListSnapshots), oldest first.
func (c *Client) VolumeRevisions(ctx context.Context, vm, volume string) ([]string, error) {
	return c.list(ctx, "admin.vm.volume.ListSnapshots", vm, volume)
}

// RevertVolume reverts volume of vm to revision (admin.vm.volume.Revert).
// An unknown revision gives an empty reply (ErrEmptyReply), as the daemon
// turns the KeyError into one.
func (c *Client) RevertVolume(ctx context.Context, vm, volume, revision string) error {
	_, err := c.Call(ctx, "admin.vm.volume.Revert", vm, volume, []byte(revision))
	return err
}

// ResizeVolume sets the size of volume of vm to size bytes
// (admin.vm.volume.Resize). The daemon, not this call, decides whether a
// shrink is allowed; see VolumeInfo for the current size.
func (c *Client) ResizeVolume(ctx context.Context, vm, volume string, size int64) error {
	if size < 0 {
		return fmt.Errorf("admin: negative volume size %d", size)
	}
	_, err := c.Call(ctx, "admin.vm.volume.Resize", vm, volume, []byte(strconv.FormatInt(size, 10)))
	return err
}

// ClearVolume empties volume of vm (admin.vm.volume.Clear); the old data
// may be kept as a revision.
func (c *Client) ClearVolume(ctx context.Context, vm, volume string) error {
	_, err := c.Call(ctx, "admin.vm.volume.Clear", vm, volume, nil)
	return err
}

// VolumeCloneFrom starts a clone of volume of vm (admin.vm.volume.CloneFrom)
// and returns the single-use token VolumeCloneTo takes.
func (c *Client) VolumeCloneFrom(ctx context.Context, vm, volume string) (string, error) {
	body, err := c.Call(ctx, "admin.vm.volume.CloneFrom", vm, volume, nil)
	if err != nil {
		return "", err
	}
	return string(body), nil
}

// VolumeCloneTo replaces the data of volume of vm with that of the volume
// token was issued for (admin.vm.volume.CloneTo); the token is passed
// through verbatim.
func (c *Client) VolumeCloneTo(ctx context.Context, vm, volume, token string) error {
	_, err := c.Call(ctx, "admin.vm.volume.CloneTo", vm, volume, []byte(token))
	return err
}

// CloneVolume copies the data of srcVolume of srcVM into dstVolume of dstVM
// (VolumeCloneFrom, then VolumeCloneTo).
func (c *Client) CloneVolume(ctx context.Context, srcVM, srcVolume, dstVM, dstVolume string) error {
	token, err := c.VolumeCloneFrom(ctx, srcVM, srcVolume)
	if err != nil {
		return err
	}
	return c.VolumeCloneTo(ctx, dstVM, dstVolume, token)
}

// SetVolumeOption sets a property of volume of vm
// (admin.vm.volume.Set.<property>: rw, revisions_to_keep or ephemeral) to
// value, sent verbatim.
func (c *Client) SetVolumeOption(ctx context.Context, vm, volume, property, value string) error {
	if property == "" || strings.ContainsAny(property, " +\x00") {
		return fmt.Errorf("admin: invalid volume property %q", property)
	}
	_, err := c.Call(ctx, "admin.vm.volume.Set."+property, vm, volume, []byte(value))
	return err
}

// SetVolumeRW makes volume of vm writable or read-only
// (admin.vm.volume.Set.rw); the qube must be halted.
func (c *Client) SetVolumeRW(ctx context.Context, vm, volume string, rw bool) error {
	return c.SetVolumeOption(ctx, vm, volume, "rw", pyBool(rw))
}

// SetVolumeRevisionsToKeep sets how many revisions volume of vm keeps
// (admin.vm.volume.Set.revisions_to_keep).
func (c *Client) SetVolumeRevisionsToKeep(ctx context.Context, vm, volume string, n int) error {
	return c.SetVolumeOption(ctx, vm, volume, "revisions_to_keep", strconv.Itoa(n))
}

// SetVolumeEphemeral sets whether volume of vm is encrypted with an
// ephemeral key (admin.vm.volume.Set.ephemeral).
func (c *Client) SetVolumeEphemeral(ctx context.Context, vm, volume string, on bool) error {
	return c.SetVolumeOption(ctx, vm, volume, "ephemeral", pyBool(on))
}
