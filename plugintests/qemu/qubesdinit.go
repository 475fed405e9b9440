package qemu

// QubesDBPort is the name of the virtio-serial port that carries a qube's
// QubesDB from qubesd to the guest (core/lifecycle/guestdb.go).
const QubesDBPort = "org.qubes-os.qubesdb"

// QubesdInit is an /init for Initramfs for a guest that qubesd starts
// (the kvm flavour's domain XML). It mounts /proc, /sys and devtmpfs,
// prints "QUBESD-INIT uptime=<seconds since the kernel started>", loads
// the modules Initramfs packed, then:
//
//  1. waits (up to 5 s each) for /dev/vda and /dev/vdb, the qube's root
//     and private volumes, and prints "QUBESD-DISK-READ vda <line>" and
//     "QUBESD-DISK-READ vdb <line>": the first line found at the start of
//     each disk (raw, no file system; empty on a zeroed disk);
//  2. finds the virtio-serial port named QubesDBPort
//     (/sys/class/virtio-ports/*/name, device /dev/vportNpM), reads its
//     protocol header and the snapshot up to the "S" line into
//     /run/qubesdb (one file per entry, named by its path with "/" turned
//     into "!", holding the decoded value), and prints
//     "QUBESD-QDB-SNAPSHOT entries=N"; without the port, or on an
//     unexpected header, it prints "QUBESD-QDB-ERROR <reason>" and stops
//     there (no marker);
//  3. when the kernel command line has qubes.token=TOKEN, writes
//     "QUBESD-PRIVATE TOKEN" at the start of /dev/vdb and
//     "QUBESD-ROOT-SCRIBBLED TOKEN" at the start of /dev/vda (fsync'd), and
//     prints "QUBESD-DISK-WROTE TOKEN";
//  4. prints "QUBESD-READY uptime=<seconds>", then Marker(<the value of
//     /name from QubesDB>);
//  5. keeps reading QubesDB's changes in the background, applying them and
//     printing "QUBESD-QDB-CHANGE W <path>" or "QUBESD-QDB-CHANGE R <path>"
//     for each, and "QUBESD-QDB-EOF" when qubesd ends the channel; and
//     waits. An ACPI power-button press (a shutdown) powers it off.
const QubesdInit = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "QUBESD-INIT uptime=$(cut -d ' ' -f 1 /proc/uptime)"
for m in $(cat /etc/modules); do insmod /lib/modules/$m.ko 2>/dev/null; done
token=
for w in $(cat /proc/cmdline); do
	case "$w" in
	qubes.token=*) token="${w#qubes.token=}" ;;
	esac
done

for d in vda vdb; do
	i=0
	while [ ! -b /dev/$d ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
	if [ -b /dev/$d ]; then
		echo "QUBESD-DISK-READ $d $(dd if=/dev/$d bs=512 count=1 2>/dev/null | tr -d '\000' | head -n 1)"
	else
		echo "QUBESD-DISK-MISSING $d"
	fi
done

port=
i=0
while [ -z "$port" ] && [ $i -lt 50 ]; do
	for p in /sys/class/virtio-ports/*; do
		if [ "$(cat $p/name 2>/dev/null)" = ` + QubesDBPort + ` ] && [ -c /dev/${p##*/} ]; then
			port=/dev/${p##*/}
		fi
	done
	[ -n "$port" ] || sleep 0.1
	i=$((i+1))
done
if [ -z "$port" ]; then
	echo "QUBESD-QDB-ERROR no virtio port named ` + QubesDBPort + ` in /sys/class/virtio-ports: $(cat /sys/class/virtio-ports/*/name 2>/dev/null | tr '\n' ' ')"
	while true; do sleep 3600; done
fi

qdb=/run/qubesdb
mkdir -p $qdb
# apply LINE: one W or R line of the protocol
apply() {
	case "$1" in
	"W "*)
		rest=${1#W }
		p=${rest%% *}
		printf '%b' "${rest#* }" >"$qdb/$(echo "$p" | tr / !)"
		;;
	"R "*/)
		rm -f "$qdb/$(echo "${1#R }" | tr / !)"*
		;;
	"R "*)
		rm -f "$qdb/$(echo "${1#R }" | tr / !)"
		;;
	esac
}
exec 3<"$port"
IFS= read -r hdr <&3
if [ "$hdr" != "QUBESDB 1" ]; then
	echo "QUBESD-QDB-ERROR unexpected header on $port: $hdr"
	while true; do sleep 3600; done
fi
n=0
while IFS= read -r line <&3; do
	[ "$line" = S ] && break
	apply "$line"
	n=$((n+1))
done
echo "QUBESD-QDB-SNAPSHOT entries=$n"

if [ -n "$token" ]; then
	echo "QUBESD-PRIVATE $token" | dd of=/dev/vdb bs=512 conv=sync,fsync 2>/dev/null
	echo "QUBESD-ROOT-SCRIBBLED $token" | dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null
	echo "QUBESD-DISK-WROTE $token"
fi
acpid -d -c /etc/acpi 2>&1 &
echo "QUBESD-READY uptime=$(cut -d ' ' -f 1 /proc/uptime)"
echo "QUBESD-GUEST-UP name=$(cat $qdb/!name)"
(
	set -f
	while IFS= read -r line <&3; do
		apply "$line"
		set -- $line
		echo "QUBESD-QDB-CHANGE $1 $2"
	done
	echo "QUBESD-QDB-EOF"
) &
while true; do sleep 3600; done
`
