package pool

import (
	"context"
	"strconv"
	"time"
)

// Driver is what a storage pool driver implements. One Driver value serves
// every pool that names the driver: each call says which pool (Pool: name
// and config) and, for volume calls, carries the full volume spec (Volume)
// as the daemon keeps it in qubes.xml. A driver keeps no state of its own
// apart from the storage — a restarted plugin gets Configure and Open again
// and carries on.
//
// Contract, checked by package pooltest:
//
//   - Mutating calls are idempotent: the daemon retries a call that failed
//     because the plugin died, so calling one twice succeeds and leaves the
//     state calling it once left.
//   - Errors carry a kind (errors.Is): ErrNotFound for an unknown volume,
//     revision or pool storage, ErrInUse for an operation the volume's state
//     forbids (started, import in progress), ErrInvalid for a refused
//     config or operation, ErrPoolFull, ErrUnavailable for a transient
//     failure, ErrUnimplemented for what the driver does not do. Wrap them
//     with context: fmt.Errorf("volume %s: %w", v.VID, pool.ErrNotFound), or
//     use Errorf.
//   - No bulk data passes through the driver: Start, ImportBegin and
//     ExportBegin return paths the daemon reads or writes.
//   - Calls on different volumes may run concurrently; the daemon never
//     runs two calls on the same volume at once.
//
// The SDK checks every request before the driver sees it (see Check): pool
// name present, vid well formed, revisions_to_keep >= -1, snap_on_start
// with a source and only then, revision ids well formed.
//
// Embed UnimplementedDriver to stay source compatible when later SDK
// versions add methods.
type Driver interface {
	// Info describes the driver. It does not fail once the driver runs.
	Info(ctx context.Context) (Info, error)
	// Configure receives the plugin's [plugins.NAME.config] table from the
	// daemon's TOML config, as a JSON object (empty when there is none),
	// once after every plugin start and before any other call but Info.
	// DecodeConfig decodes it strictly. ErrInvalid refuses it.
	Configure(ctx context.Context, config []byte) error
	// ValidateConfig checks a pool config (the driver's own keys: the
	// daemon keeps name, driver, revisions_to_keep and ephemeral_volatile)
	// without touching the storage. ErrInvalid names the offending key.
	ValidateConfig(ctx context.Context, config map[string]string) error

	// Open checks that the pool's storage is there and usable; it runs
	// after every plugin start for every pool. ErrUnavailable if it is not.
	Open(ctx context.Context, p Pool) error
	// Setup creates the pool's storage if it is absent (Qubes Pool.setup).
	Setup(ctx context.Context, p Pool) error
	// Destroy removes what Setup created.
	Destroy(ctx context.Context, p Pool) error
	// Usage reports the pool's size and usage.
	Usage(ctx context.Context, p Pool) (Usage, error)
	// ListVolumes lists the volumes that have storage in the pool.
	ListVolumes(ctx context.Context, p Pool) ([]VolumeState, error)

	// Create makes the volume's storage: for an origin volume, v.Size bytes
	// of zeros. It is called once in the volume's life; a second call finds
	// the volume there and succeeds.
	Create(ctx context.Context, p Pool, v Volume) error
	// Remove deletes everything belonging to the volume, started or not;
	// an absent volume is not an error.
	Remove(ctx context.Context, p Pool, v Volume) error
	// Start prepares the volume for its qube's start and returns the block
	// device the qube gets: origin — the committed content, writable;
	// snapshot — a copy-on-write snapshot of the source's committed
	// content; volatile — v.Size bytes of zeros. Starting a started volume
	// returns the same device, untouched.
	Start(ctx context.Context, p Pool, v Volume) (BlockDevice, error)
	// Stop runs after the qube stopped. An origin volume (rw) commits what
	// the qube wrote: the previous committed content becomes a revision
	// (kept as v.RevisionsToKeep says). Everything else is discarded.
	// Stopping a stopped volume does nothing.
	Stop(ctx context.Context, p Pool, v Volume) error
	// Resize makes the volume size bytes (v.Size is the current nominal
	// size): the running image while started, the committed content of a
	// stopped origin volume; a stopped volatile or snapshot volume has
	// nothing to resize (the next Start uses the new v.Size). Shrinking
	// needs Capabilities.Shrink, ErrInvalid otherwise; so does resizing a
	// read-only volume.
	Resize(ctx context.Context, p Pool, v Volume, size uint64) error
	// Revert replaces the committed content with revision ("" = the
	// latest). The revision is kept; the replaced content is not. ErrInUse
	// while started, ErrNotFound for an unknown revision.
	Revert(ctx context.Context, p Pool, v Volume, revision string) error
	// ListRevisions lists the kept revisions, oldest first.
	ListRevisions(ctx context.Context, p Pool, v Volume) ([]Revision, error)
	// VolumeInfo reports the volume's size, usage and state.
	VolumeInfo(ctx context.Context, p Pool, v Volume) (VolumeState, error)
	// Verify checks that the volume's storage is complete (for a snapshot
	// volume: that its source's is). The error says what is wrong.
	Verify(ctx context.Context, p Pool, v Volume) error
	// CloneFrom creates v, an origin volume, as a copy of src's committed
	// content (src is in the same pool). If v already exists the call
	// does nothing: it is a retry (the daemon removes a volume before
	// cloning over it).
	CloneFrom(ctx context.Context, p Pool, v, src Volume) error
	// ImportBegin returns a path where writing size bytes replaces the
	// content of v, an origin volume, once ImportEnd(true) is called.
	// ErrInUse while started. Calling it again starts the import afresh.
	ImportBegin(ctx context.Context, p Pool, v Volume, size uint64) (string, error)
	// ImportEnd commits (success) the imported data — the previous content
	// becomes a revision, as at Stop — or discards it. Without an import in
	// progress it does nothing.
	ImportEnd(ctx context.Context, p Pool, v Volume, success bool) error
	// ExportBegin returns a path to read v's committed content from (the
	// content from before the start while v is started).
	ExportBegin(ctx context.Context, p Pool, v Volume) (string, error)
	// ExportEnd releases what ExportBegin set up for path.
	ExportEnd(ctx context.Context, p Pool, v Volume, path string) error
}

// Info describes a driver.
type Info struct {
	// Name is the driver name pools refer to ("file", "lvm_thin", ...).
	Name string
	// Version is the plugin's own version, free-form.
	Version string
	// Description is one line for people.
	Description string
	// ProtocolVersion is the SDK protocol version the plugin speaks. The
	// SDK fills it in; drivers leave it zero.
	ProtocolVersion int
	// Capabilities declares what the driver supports.
	Capabilities Capabilities
	// PoolConfig documents the pool config keys the driver accepts.
	PoolConfig []ConfigKey
}

// Capabilities declares what a driver supports. The daemon does not probe by
// error: it does not make a call that needs a capability the driver lacks.
type Capabilities struct {
	// Revisions: committed states are kept as revisions (per
	// Volume.RevisionsToKeep), listed by ListRevisions, restored by Revert.
	Revisions bool
	// Shrink: Resize may make a volume smaller.
	Shrink bool
	// FastClone: CloneFrom is implemented (copy-on-write where the storage
	// allows). Without it the daemon copies through ExportBegin/ImportBegin.
	FastClone bool
	// Import: ImportBegin/ImportEnd are implemented.
	Import bool
	// Export: ExportBegin/ExportEnd are implemented.
	Export bool
	// Ephemeral: the driver honours Volume.Ephemeral itself (encryption
	// with a throw-away key). Without it the daemon layers the encryption
	// on the block device.
	Ephemeral bool
	// OriginSnapshot: snap_on_start together with save_on_stop works. No
	// Qubes driver supports it.
	OriginSnapshot bool
}

// ConfigKey documents one pool config key.
type ConfigKey struct {
	Name        string
	Description string
	Required    bool
	// Default is the value used when the key is absent ("" = none).
	Default string
}

// Pool names a pool and carries its config: the driver's own keys, as
// strings (qubes.xml stores pool configs as strings).
type Pool struct {
	Name   string
	Config map[string]string
}

// Volume is the full spec of a volume, as the daemon keeps it in qubes.xml
// (Qubes' volume config keys). Type tells its kind.
type Volume struct {
	// VID identifies the volume in its pool: slash-separated elements of
	// [A-Za-z0-9_.:+@-], none "." or "..", e.g. "appvms/work/private".
	VID string
	// Name is the volume's name in its qube: root, private, volatile, ...
	Name string
	// Size in bytes: the nominal size (a snapshot volume gets its source's).
	Size uint64
	// RW: the qube may write to it.
	RW bool
	// SnapOnStart: at start, a copy-on-write snapshot of SourceVID.
	SnapOnStart bool
	// SaveOnStop: at stop, what the qube wrote is committed.
	SaveOnStop bool
	// RevisionsToKeep: -1 snapshots disabled, 0 keep none, N keep N.
	RevisionsToKeep int
	// SourceVID: the volume (same pool) a SnapOnStart volume snapshots.
	SourceVID string
	// Ephemeral: encrypt with a throw-away key (Capabilities.Ephemeral).
	Ephemeral bool
}

// VolumeType is a volume's kind, from SnapOnStart and SaveOnStop.
type VolumeType int

// The volume types of Qubes (storage spec §1.1).
const (
	// Volatile: empty at every start, discarded at stop (volatile).
	Volatile VolumeType = iota
	// Snapshot: at start a copy-on-write snapshot of the source's committed
	// content, discarded at stop (an AppVM's root).
	Snapshot
	// Origin: persistent, committed at stop (private, a template's root).
	Origin
	// OriginSnapshot: snap_on_start and save_on_stop; only drivers with
	// Capabilities.OriginSnapshot.
	OriginSnapshot
)

// Type returns the volume's type.
func (v Volume) Type() VolumeType {
	switch {
	case v.SnapOnStart && v.SaveOnStop:
		return OriginSnapshot
	case v.SnapOnStart:
		return Snapshot
	case v.SaveOnStop:
		return Origin
	}
	return Volatile
}

func (t VolumeType) String() string {
	switch t {
	case Volatile:
		return "volatile"
	case Snapshot:
		return "snapshot"
	case Origin:
		return "origin"
	case OriginSnapshot:
		return "origin_snapshot"
	}
	return "VolumeType(" + strconv.Itoa(int(t)) + ")"
}

// Usage is a pool's size and usage in bytes. Size 0 means unknown.
type Usage struct {
	Size  uint64
	Usage uint64
	// Details holds driver-specific figures (data_size, metadata_usage...).
	Details map[string]uint64
}

// VolumeState is what a driver knows about a volume from its storage.
type VolumeState struct {
	VID string
	// Size in bytes: of the running image while started.
	Size uint64
	// Usage: bytes actually used (sparse files, thin volumes).
	Usage uint64
	// Dirty: a save_on_stop volume started and not committed yet.
	Dirty bool
	// Outdated: a started snapshot volume whose source has changed since.
	Outdated bool
	// Path is the file or block device the qube gets (or would get) for
	// the volume, as admin.vm.volume.Info shows it ("" if none).
	Path string
}

// BlockDevice is the disk a qube gets for a volume. An empty Path means no
// disk (a kernel volume without modules.img).
type BlockDevice struct {
	Path string
	RW   bool
	// DevType is "disk" (the default when empty) or "cdrom".
	DevType string
}

// Revision is one kept committed state of a volume.
type Revision struct {
	// ID matches [A-Za-z0-9:._-]+ and is unique within the volume.
	ID string
	// Time is when the revision was made: when a commit replaced this
	// content with newer content.
	Time time.Time
}
