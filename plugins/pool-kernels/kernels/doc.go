// Package kernels is the linux-kernel storage pool driver (Qubes'
// qubes/storage/kernels.py): the kernels dom0 provides to qubes, one
// read-only volume per installed kernel version. The plugin binary,
// cmd/qubesd-pool-kernels, serves New's Driver with pool.Serve.
//
// # Pool config
//
//	dir_path            absolute directory of the kernels, required. Qubes
//	                    uses /var/lib/qubes/vm-kernels (DefaultDirPath); the
//	                    daemon writes it into the pool's config.
//	revisions_to_keep   optional, and then only "0": kernel volumes have no
//	                    revisions (Qubes: "LinuxKernel supports only
//	                    revisions_to_keep=0"). The daemon normally keeps this
//	                    key to itself; it is accepted here so that a daemon
//	                    passing it through gets the same refusal.
//
// # On disk
//
// Every kernel version is a directory dir_path/<version>/:
//
//	vmlinuz                        the kernel, required
//	initramfs                      optional
//	modules.img                    optional: the disk the qube gets (xvdd)
//	default-kernelopts-pci.txt     optional default kernelopts with PCI devices
//	default-kernelopts-nopci.txt   optional default kernelopts without
//	default-kernelopts-common.txt  optional options added to every command line
//	memory-hotplug-supported       optional marker: the kernel supports memory hotplug
//
// The driver only reads this tree; kernel packages write it. Symbolic links
// are followed (a version may be a link to another version's directory).
//
// # Volumes
//
// A volume's vid is the kernel version, so every qube using a kernel has a
// volume with the same vid: the volume is the pool's, not the qube's. Its
// spec is what Qubes gives the "kernel" volume: rw, save_on_stop,
// snap_on_start and ephemeral all false, revisions_to_keep 0; anything else
// is refused with ErrInvalid, with the reason Qubes gives (read-only only,
// no save_on_stop, no ephemeral, revisions_to_keep 0 only).
//
// A version is installed when its directory holds vmlinuz (as Qubes'
// validate_kernel requires for the kernel property); otherwise every call
// that needs the version fails with ErrNotFound saying what is missing.
//
//   - Create, Start and Verify check the spec and that the version is
//     installed, and change nothing. Start hands out modules.img,
//     read-only, or no disk (an empty path) when the version has none — as
//     Qubes attaches modules.img as xvdd only if it exists.
//   - Stop and Remove do nothing, and succeed for a version that is not
//     installed (a kernel removed while a qube used it must not keep the
//     qube from stopping or being removed). They refuse only a malformed
//     version.
//   - Resize is refused (read-only); ListRevisions is empty and Revert finds
//     no revision. CloneFrom, ImportBegin/End and ExportBegin are not
//     implemented: Info declares no capability, so the daemon makes none of
//     these calls (Qubes clones a kernel volume by doing nothing: the clone
//     names the same version).
//   - VolumeInfo: size is modules.img's (0 without it), usage the bytes
//     vmlinuz, initramfs and modules.img take on disk; never dirty nor
//     outdated.
//
// # Version names
//
// A version must be one path element of the characters a vid may hold,
// [A-Za-z0-9_.:+@-], not "." or "..", at most 255 bytes (ValidateVersion).
// Qubes only forbids "/" in the kernel property; the characters the SDK
// refuses in a vid could not name a volume anyway.
//
// # Listing
//
// ListVolumes lists every installed version: each entry of dir_path that is
// a directory (or a link to one) whose name is a valid version and that
// holds vmlinuz. It ignores, logging why at debug level:
//
//   - entries that are not directories (a stray file is not a kernel);
//   - directories whose name is not a valid version (the daemon could not
//     name them as a volume, nor a qube's kernel property);
//   - directories without vmlinuz (a kernel being installed or removed, or
//     something else kept there: a qube could not boot it, and Qubes
//     refuses it as a kernel).
//
// Qubes lists every entry of dir_path instead; the difference only hides
// what no qube can use.
//
// Usage reports no pool size (0: unknown, as Qubes reports none) and, as
// usage, the bytes the installed kernels take.
//
// Kernel and Kernels return everything known about a version — the paths
// of its files and which of the optional ones exist — which is what the
// daemon needs for the kernel and default_kernel properties, kernelopts and
// the domain's kernel and initrd; storage.v1 has no field for it yet.
package kernels
