package kernels

// kernel.go: where a kernel version's files are, what one installed
// version provides (Kernel), and which version names are valid.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// DefaultDirPath is where Qubes keeps the kernels: the dir_path of the
// "linux-kernel" pool a new installation gets.
const DefaultDirPath = "/var/lib/qubes/vm-kernels"

// The files of a kernel version's directory.
const (
	FileVmlinuz          = "vmlinuz"
	FileInitramfs        = "initramfs"
	FileModules          = "modules.img"
	FileKernelOptsPCI    = "default-kernelopts-pci.txt"
	FileKernelOptsNoPCI  = "default-kernelopts-nopci.txt"
	FileKernelOptsCommon = "default-kernelopts-common.txt"
	FileMemoryHotplug    = "memory-hotplug-supported"
)

// maxVersionLen is the longest file name Linux allows (NAME_MAX).
const maxVersionLen = 255

var versionChars = regexp.MustCompile(`^[A-Za-z0-9_.:+@-]+$`)

// ValidateVersion checks a kernel version name: one path element of
// [A-Za-z0-9_.:+@-], not "." or "..", at most 255 bytes. Errors are
// ErrInvalid. A valid version is safe to join to dir_path.
func ValidateVersion(version string) error {
	switch {
	case version == "":
		return pool.Errorf(pool.ErrInvalid, "kernel version is empty")
	case strings.Contains(version, "/"):
		return pool.Errorf(pool.ErrInvalid, "kernel version %q: must be a single path element, without '/'", version)
	case version == "." || version == "..":
		return pool.Errorf(pool.ErrInvalid, "kernel version %q: not a directory name", version)
	case len(version) > maxVersionLen:
		return pool.Errorf(pool.ErrInvalid, "kernel version %.20q...: longer than %d bytes", version, maxVersionLen)
	case !versionChars.MatchString(version):
		return pool.Errorf(pool.ErrInvalid, "kernel version %q: only the characters [A-Za-z0-9_.:+@-] are allowed", version)
	}
	return nil
}

// Kernel is what one installed kernel version provides. Paths are
// absolute; an optional file that is absent has "".
type Kernel struct {
	// Version is the version name: the volume's vid.
	Version string
	// Dir is dir_path/<version> (Qubes' kernels_dir).
	Dir string
	// Vmlinuz is the kernel image (always there: it makes a version installed).
	Vmlinuz string
	// Initramfs is the initial ramdisk, "" if absent.
	Initramfs string
	// Modules is modules.img, the qube's xvdd, "" if absent (no disk).
	Modules string
	// ModulesSize is modules.img's size in bytes (0 without it).
	ModulesSize uint64
	// KernelOptsPCI, KernelOptsNoPCI and KernelOptsCommon are the default
	// kernel options files ("" if absent): the kernelopts default for a
	// qube with PCI devices, for one without, and what every command line
	// starts with.
	KernelOptsPCI    string
	KernelOptsNoPCI  string
	KernelOptsCommon string
	// MemoryHotplug: the memory-hotplug-supported marker exists.
	MemoryHotplug bool
	// Usage is the bytes vmlinuz, initramfs and modules.img take on disk.
	Usage uint64
}

// inspect reads what version provides in the kernels directory dir. A
// version that is not installed — its directory or its vmlinuz missing,
// or dir itself missing — is ErrNotFound, saying what is missing.
func inspect(dir, version string) (Kernel, error) {
	if err := ValidateVersion(version); err != nil {
		return Kernel{}, err
	}
	k := Kernel{Version: version, Dir: filepath.Join(dir, version)}
	fi, err := os.Stat(k.Dir)
	switch {
	case absent(err):
		if _, derr := os.Stat(dir); absent(derr) {
			return Kernel{}, pool.Errorf(pool.ErrNotFound, "kernel %q not installed: the kernels directory %s does not exist", version, dir)
		}
		return Kernel{}, pool.Errorf(pool.ErrNotFound, "kernel %q not installed: %s does not exist", version, k.Dir)
	case err != nil:
		return Kernel{}, fmt.Errorf("kernel %q: %w", version, err)
	case !fi.IsDir():
		return Kernel{}, pool.Errorf(pool.ErrNotFound, "kernel %q not installed: %s is not a directory", version, k.Dir)
	}
	vmlinuz, err := file(k.Dir, FileVmlinuz)
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel %q: %w", version, err)
	}
	if vmlinuz == nil {
		return Kernel{}, pool.Errorf(pool.ErrNotFound, "kernel %q not properly installed: missing file %s", version, filepath.Join(k.Dir, FileVmlinuz))
	}
	k.Vmlinuz = filepath.Join(k.Dir, FileVmlinuz)
	k.Usage = used(vmlinuz)
	for _, f := range []struct {
		name string
		path *string
		size *uint64
	}{
		{FileInitramfs, &k.Initramfs, nil},
		{FileModules, &k.Modules, &k.ModulesSize},
		{FileKernelOptsPCI, &k.KernelOptsPCI, nil},
		{FileKernelOptsNoPCI, &k.KernelOptsNoPCI, nil},
		{FileKernelOptsCommon, &k.KernelOptsCommon, nil},
	} {
		fi, err := file(k.Dir, f.name)
		if err != nil {
			return Kernel{}, fmt.Errorf("kernel %q: %w", version, err)
		}
		if fi == nil {
			continue
		}
		*f.path = filepath.Join(k.Dir, f.name)
		if f.size != nil {
			*f.size = uint64(fi.Size())
		}
		if f.name == FileInitramfs || f.name == FileModules {
			k.Usage += used(fi)
		}
	}
	marker, err := file(k.Dir, FileMemoryHotplug)
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel %q: %w", version, err)
	}
	k.MemoryHotplug = marker != nil
	return k, nil
}

// file stats dir/name, following links: nil if there is no file there (a
// directory does not count), an error only if it cannot tell.
func file(dir, name string) (fs.FileInfo, error) {
	fi, err := os.Stat(filepath.Join(dir, name))
	switch {
	case absent(err):
		return nil, nil
	case err != nil:
		return nil, err
	case fi.IsDir():
		return nil, nil
	}
	return fi, nil
}

// absent reports whether err says that a path does not exist (a dangling
// link, or a file where a directory should be, included).
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// used is the space a file takes on disk (its size where the file system
// does not say).
func used(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Blocks) * 512
	}
	return uint64(fi.Size())
}
