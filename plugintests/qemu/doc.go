// Package qemu is the test harness for running real VMs through libvirt
// under qemu (software emulation, domain type "qemu") on a Debian machine.
// It is test-only code: every entry point takes a testing.TB and skips the
// test, with the precise reason, when the machine cannot run VMs.
//
// # What it installs
//
// Ensure, Kernel and Initramfs first make sure these Debian packages are
// installed, with "apt-get install -y" (DEBIAN_FRONTEND=noninteractive);
// "apt-get update" is run once, and the install retried, only when the
// first install fails (typically for a missing package list):
//
//	qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu
//	libvirt-clients linux-image-cloud-amd64 busybox-static
//
// Ensure also creates the system user "libvirt-qemu" (useradd --system)
// when it is missing: the Debian build of libvirt's qemu driver looks it up
// at start-up even though the private qemu.conf runs qemu as root.
// Packages and that user stay installed afterwards.
//
// # The private libvirt
//
// Ensure never reads or writes /etc/libvirt, and never talks to a system
// libvirtd. A privileged (root) libvirtd has its paths compiled in
// (/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt,
// /var/cache/libvirt) and there is no flag for the qemu driver's
// configuration, so Ensure runs its own virtlogd and libvirtd in a private
// mount namespace (unshare --mount, then nsenter for the second daemon) in
// which each of those five directories is a bind mount of a subdirectory of
// one temporary directory, /tmp/qubesd-libvirt-*:
//
//	etc/    libvirtd.conf, virtlogd.conf, qemu.conf (user/group root, no
//	        cgroups, no namespaces, security_driver "none")
//	run/    libvirt-sock (the socket Env.URI names), run/qemu/NAME.pid
//	lib/    the daemon's state (persistent domain definitions)
//	log/    log/qemu/NAME.log: qemu's own log for each domain
//	cache/
//	libvirtd.log, virtlogd.log, libvirtd.out, virtlogd.out, *.pid
//
// The five mount points are created on the host when missing (empty
// directories, left in place: removing a directory that another test
// process uses as a mount point would detach its mount). Nothing is
// mounted in the host's namespace; the namespace disappears with the last
// process in it.
//
// Env.URI, "qemu+unix:///system?socket=/tmp/qubesd-libvirt-*/run/libvirt-sock",
// reaches that private daemon from outside the namespace; Env.Virsh runs
// the virsh CLI against it (no cgo). Domains see the host's file system
// apart from those five directories, so kernels, initramfs images, disks
// and console logs are ordinary host paths (under /tmp or /boot).
//
// # Sharing and cleanup
//
// One private instance serves the whole test process. Ensure takes a
// reference and releases it in t.Cleanup; Start and Stop do the same for a
// TestMain that wants to keep one instance across all its tests. When the
// last reference goes, the instance destroys and undefines every domain
// still known to its libvirtd, sends SIGTERM (then SIGKILL after 10 s) to
// the libvirtd and the virtlogd it started, by the PIDs it recorded (never
// a PID <= 1), kills any qemu still named in its run/qemu/*.pid whose
// executable is qemu, and removes the temporary directory.
//
// The qemu capabilities libvirtd probes at start-up (about 5 s here) are
// kept in memory and seeded into the next instance of the same process,
// which then starts in well under a second.
//
// As a safety net both daemons are started with a parent-death signal
// (SIGTERM), so they stop if the test binary dies; qemu processes they
// started would then survive, and the next Ensure cleans up such a stale
// instance (whose recorded owner process is gone) the same way.
//
// Setting QUBESD_QEMU_REQUIRE=1 turns every skip of this package into a
// test failure, for a CI that must run the real VMs.
//
// # Guests
//
// Kernel returns the newest Debian cloud kernel in /boot; Initramfs builds a
// gzip-compressed newc cpio archive in Go with busybox-static, its applet
// links, the virtio (pci, blk, console, net) and ACPI button/evdev modules
// of that kernel, and the caller's /init (DefaultInit prints
// "QUBESD-GUEST-UP name=<qubes.name>" on the serial console; see
// DefaultInit for the disk and shutdown behaviour). Domain renders a
// minimal libvirt domain XML for such a guest. QubesdInit is the /init for
// a qube that qubesd starts: it reads the qube's QubesDB from the
// virtio-serial port QubesDBPort and reports the name it got there.
package qemu
