// Package filepool holds the qubesd storage pool drivers that keep volumes
// as image files in a directory: file-reflink (NewReflink) and file
// (NewFile). Each runs in its own plugin process
// (cmd/qubesd-pool-file-reflink, cmd/qubesd-pool-file). Both read and write
// the on-disk layout of the reference's driver of the same name, so a pool
// moves between the Python qubesd and this one while its qubes are halted.
//
// Pool config (qubes.xml), for both: dir_path (required, absolute),
// revisions_to_keep (a new volume's default, which the daemon applies; at
// most 1 for file), ephemeral_volatile (the daemon's default for volatile
// volumes' encryption, which the daemon layers on). file-reflink also takes
// setup_check (default True): Setup then refuses a file system without
// reflinks, saying to pass setup_check=False; the reference does not keep it
// in qubes.xml. Setup makes dir_path (not its parents), appvms/ and
// vm-templates/. No plugin config.
//
// A volume's files start with dir_path/<vid>; the reference's vids are
// appvms/<qube>/<volume> and vm-templates/<qube>/<volume>. Every file is
// written under a temporary name (<name>~<random>, as the reference's
// reflink driver names them, so that each implementation removes what the
// other left after a crash), synced, renamed into place, and the directory
// synced. Copies are reflinks (FICLONE) where the file system makes them
// (btrfs, xfs), else sparse copies (holes stay holes); images are created
// sparse. Every mutating call looks whether its work is done and completes
// what a call cut short left, so a retry ends as one call would have; no
// step removes a volume's only copy of its committed content before its
// replacement is in place.
//
// # file-reflink
//
// Files, as the reference's (qubes/storage/reflink.py):
//
//	<vid>.img                   origin: the committed content ("clean")
//	                            snapshot, started: a hard link to the source's <vid>.img it was copied from
//	<vid>-dirty.img             started: what the qube gets (origin: a copy of .img; snapshot: of the
//	                            source's .img; volatile: empty)
//	<vid>-precache.img          origin, stopped: a reflink of .img with its mtime, renamed to -dirty.img by
//	                            the next Start if .img has not changed since
//	<vid>-import.img            an import in progress
//	<vid>.img.<N>@<stamp>Z      revision N (1, 2, ... increasing); stamp = the UTC mtime of the .img it was,
//	                            YYYY-MM-DDTHH:MM:SS; its id is N
//
// Start copies .img to -dirty.img (or renames a good precache); with
// revisions_to_keep -1 it renames .img itself, after removing the
// revisions. Stop commits: the old .img becomes revision N+1 (a second
// name, not a copy), the oldest beyond revisions_to_keep go, -dirty.img is
// renamed over .img, and a new precache is made. A read-only volume's
// -dirty.img is thrown away instead. A snapshot volume's Outdated is its
// .img link no longer being the source's .img. Import commits -import.img
// as Stop commits -dirty.img. Export hands out .img.
//
// Where it differs from the reference:
//   - Revert makes the revision's file .img too (a second name; clean
//     images and revisions are never written in place) and keeps the
//     revision (the SDK contract: a retried revert ends as one); the
//     replaced .img is not kept, and .img gets a fresh mtime so that
//     revisions stay in chronological order. The reference renames the
//     revision (it is consumed) and keeps the replaced .img as a new
//     revision. Both refuse while started.
//   - A stopped snapshot or volatile volume is marked by an empty (sparse)
//     -dirty.img, which the reference deletes at stop; the reference
//     replaces it at its next start. A started volatile volume is one whose
//     -dirty.img holds data.
//   - No precache where the file system makes no reflinks: it would be a
//     full second copy (the reference makes one anyway).
//   - A read-only origin volume's writes are thrown away at stop (the
//     reference relies on the device being read-only and commits).
//
// # file
//
// Files, as the reference's legacy file driver (qubes/storage/file.py),
// which stacks device-mapper snapshots on loop devices; here copies (a
// reflink, else sparse) take their place and no device-mapper device is
// made: a qube gets a file.
//
//	<vid>.img            origin, volatile: the image; an origin volume's qube writes it directly
//	                     (the reference's snapshot-origin does the same)
//	<vid>-cow.img        origin, started: the content from before the start, a whole copy of .img
//	                     (the reference's copy-on-write store keeps only the chunks the qube overwrote)
//	                     snapshot, started: what the qube gets, a copy of the source's content from
//	                     before the source's start (the reference stacks a snapshot on the source's)
//	                     snapshot, stopped: empty (the reference deletes it at stop)
//	<vid>-cow.img.old    the single revision, id "old", dated by its ctime
//	<vid>-import.img     an import in progress, renamed over .img when it ends
//
// Start of an origin volume copies .img to -cow.img; Stop commits as the
// reference does: -cow.img is renamed to -cow.img.old (revisions_to_keep
// 1) or removed (0). revisions_to_keep -1: no copy, the qube writes the
// only one. A read-only origin volume's qube gets the copy, thrown away at
// stop. An import's end makes the replaced .img "old" (a second name) and
// renames -import.img over .img.
//
// A started volume is one whose -cow.img is a copy: it takes at least one
// block on disk (the copy is made so) and does not start with a
// device-mapper snapshot header. The reference's -cow.img of a stopped
// volume is a sparse file or an empty store (a header, no exception),
// which this driver takes for stopped, as the reference's is_dirty does.
// A store with exceptions is a volume the reference left started: its
// content from before the start is .img with the store's chunks put back,
// which this driver reads (dmsnap.go) where it needs that content — a
// snapshot volume's start, a clone — and commits at stop as the reference
// would. A -cow.img.old the reference made is such a store, turned into a
// whole image when reverted to.
//
// Where it differs from the reference:
//   - No device-mapper devices, no loop devices made by the driver; a
//     started origin volume takes the space of a whole copy where the file
//     system makes no reflinks.
//   - -cow.img.old, when made here, is a whole image, not a store. The
//     reference only lists it (and replaces it at its next commit).
//   - Revert to "old" works (the reference has none), keeping "old".
//     Revisions is not declared in Info: the driver keeps at most one
//     revision, and a driver with Revisions keeps as many as a volume asks.
//   - Export of a started volume hands out the copy from before the start
//     (the reference refuses); a volume the reference left started is
//     refused until stopped.
//   - A clone or an import never removes the target's image before its
//     replacement is there (the reference's import_volume does).
//   - A volatile volume's image is emptied at stop, not deleted; a stopped
//     snapshot volume keeps an empty -cow.img. The reference removes and
//     recreates both at its next start.
//
// # Both
//
// A stopped snapshot or volatile volume of a pool the reference made has no
// file; it is taken to exist while its qube's directory
// (appvms/<qube>/ or vm-templates/<qube>/) does. Remove deletes a volume's
// files and then its directory if that is empty (as reflink.py does),
// never dir_path, appvms/ or vm-templates/. ListVolumes looks at the files
// (skipping vm-kernels/, the reference's kernel pool inside
// /var/lib/qubes): a volume's kind is not on disk, so its Dirty there is a
// best guess. A resize of a started volume refreshes the loop devices
// backed by its image (LOOP_SET_CAPACITY), as the reference does. Shrinking
// is allowed, as in the reference (its client refuses without --force).
// Ephemeral volumes are not encrypted by the drivers (the daemon does it).
package filepool
