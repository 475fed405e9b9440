package kernels

// driver_volumes.go: the volume calls. A volume is an installed kernel
// version (its vid); nothing here writes to the kernels directory.

import (
	"context"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// checkSpec refuses a volume spec a kernel volume cannot have, with the
// reasons Qubes gives (qubes/storage/kernels.py).
func checkSpec(v pool.Volume) error {
	if err := ValidateVersion(v.VID); err != nil {
		return err
	}
	switch {
	case v.RW:
		return pool.Errorf(pool.ErrInvalid, "volume %s: linux-kernel supports only read-only volumes (rw=False)", v.VID)
	case v.SaveOnStop:
		return pool.Errorf(pool.ErrInvalid, "volume %s: linux-kernel does not support save_on_stop=True", v.VID)
	case v.SnapOnStart:
		return pool.Errorf(pool.ErrInvalid, "volume %s: linux-kernel does not support snap_on_start=True", v.VID)
	case v.Ephemeral:
		return pool.Errorf(pool.ErrInvalid, "volume %s: linux-kernel volumes cannot be ephemeral", v.VID)
	case v.RevisionsToKeep != 0:
		return pool.Errorf(pool.ErrInvalid, "volume %s: linux-kernel supports only revisions_to_keep=0, not %d", v.VID, v.RevisionsToKeep)
	}
	return nil
}

// installed checks v's spec and returns its kernel.
func installed(p pool.Pool, v pool.Volume) (Kernel, error) {
	if err := checkSpec(v); err != nil {
		return Kernel{}, err
	}
	return inspect(dirPath(p), v.VID)
}

// Create makes nothing: the kernel is there already, installed by its
// package. It checks the spec and that the version is installed.
func (*Driver) Create(_ context.Context, p pool.Pool, v pool.Volume) error {
	_, err := installed(p, v)
	return err
}

// Remove does nothing: the kernel stays for the other qubes, and for the
// package that installed it. A version that is not installed is no error.
func (*Driver) Remove(_ context.Context, _ pool.Pool, v pool.Volume) error {
	return ValidateVersion(v.VID)
}

// Start hands out modules.img, read-only, or no disk (an empty path) when
// the version has none. It changes nothing, so a second Start gives the
// same answer.
func (*Driver) Start(_ context.Context, p pool.Pool, v pool.Volume) (pool.BlockDevice, error) {
	k, err := installed(p, v)
	if err != nil {
		return pool.BlockDevice{}, err
	}
	return pool.BlockDevice{Path: k.Modules}, nil
}

// Stop does nothing, even for a version removed meanwhile.
func (*Driver) Stop(_ context.Context, _ pool.Pool, v pool.Volume) error {
	return ValidateVersion(v.VID)
}

// Resize is refused: kernel volumes are read-only (ErrNotFound first for a
// version that is not installed).
func (*Driver) Resize(_ context.Context, p pool.Pool, v pool.Volume, _ uint64) error {
	if _, err := inspect(dirPath(p), v.VID); err != nil {
		return err
	}
	return pool.Errorf(pool.ErrInvalid, "volume %s: cannot resize a read-only linux-kernel volume", v.VID)
}

// Revert finds no revision: kernel volumes keep none.
func (*Driver) Revert(_ context.Context, p pool.Pool, v pool.Volume, _ string) error {
	if _, err := inspect(dirPath(p), v.VID); err != nil {
		return err
	}
	return pool.Errorf(pool.ErrNotFound, "volume %s: no such revision: linux-kernel volumes have no revisions", v.VID)
}

// ListRevisions is empty for an installed version.
func (*Driver) ListRevisions(_ context.Context, p pool.Pool, v pool.Volume) ([]pool.Revision, error) {
	_, err := inspect(dirPath(p), v.VID)
	return nil, err
}

// VolumeInfo reports modules.img's size (0 without it) and the space the
// kernel's files take; a kernel volume is never dirty nor outdated. It
// reads the storage only, whatever the spec says.
func (*Driver) VolumeInfo(_ context.Context, p pool.Pool, v pool.Volume) (pool.VolumeState, error) {
	k, err := inspect(dirPath(p), v.VID)
	if err != nil {
		return pool.VolumeState{}, err
	}
	return state(k), nil
}

// Verify checks the spec and that the version is installed: its directory
// and its vmlinuz exist. The error names what is missing.
func (*Driver) Verify(_ context.Context, p pool.Pool, v pool.Volume) error {
	_, err := installed(p, v)
	return err
}
