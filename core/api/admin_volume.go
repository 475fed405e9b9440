package api

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/storage"
)

// Volumes of qubes (admin.vm.volume.*). Formats: spec admin-api §2.3,
// §3.3. Every method but List calls the pool driver, so they are Run
// methods: the volume record is read under the model lock, the driver
// called with no lock held, and a result recorded under the write lock.

func addVolumeMethods(t methodTable) {
	t.add(
		&Method{Name: "admin.vm.volume.List", Handle: func(c *Call) ([]byte, error) {
			return lines(storage.VolumeNames(c.Dest)), nil
		}},
		&Method{Name: "admin.vm.volume.Info", Arg: Required, Prepare: prepareVolume(nil), Run: volumeInfo},
		&Method{Name: "admin.vm.volume.ListSnapshots", Arg: Required, Prepare: prepareVolume(nil),
			Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
				m, _ := c.Server.storage()
				revs, err := m.Revisions(ctx, c.State.(*volumeCall).vol)
				if err != nil {
					return nil, 0, err
				}
				var b []byte
				for _, r := range revs {
					b = append(b, r.ID...)
					b = append(b, '\n')
				}
				return b, 0, nil
			}},
		&Method{Name: "admin.vm.volume.Revert", Arg: Required, Payload: Required, Write: true,
			Prepare: prepareVolume(func(c *Call, vc *volumeCall) error {
				if !isASCII(string(c.Payload)) {
					return qerr.New(qerr.ProtocolError, "Revision name contains non-ASCII characters")
				}
				rev := strings.TrimSpace(string(c.Payload))
				const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_."
				for _, ch := range rev {
					if !strings.ContainsRune(safe, ch) {
						return qerr.New(qerr.ProtocolError, "Revision name must be in safe set: %s", safe)
					}
				}
				vc.text = rev
				c.Perm = []events.KV{{Key: "volume", Value: vc.vol.Spec.VID}, {Key: "revision", Value: rev}}
				return nil
			}),
			Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
				m, _ := c.Server.storage()
				vc := c.State.(*volumeCall)
				return nil, 0, m.Revert(ctx, vc.vol, vc.text)
			}},
		&Method{Name: "admin.vm.volume.CloneFrom", Arg: Required, Write: true,
			Prepare: prepareVolume(func(c *Call, vc *volumeCall) error {
				c.Perm = []events.KV{{Key: "volume", Value: vc.vol.Spec.VID}}
				return nil
			}),
			Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
				token, err := c.Server.clones.add(c.Dest, c.Arg)
				return []byte(token), 0, err
			}},
		&Method{Name: "admin.vm.volume.CloneTo", Arg: Required, Payload: Required, Write: true,
			Prepare: prepareVolume(prepareCloneTo), Run: cloneTo},
		&Method{Name: "admin.vm.volume.Resize", Arg: Required, Payload: Required, Write: true,
			Prepare: prepareVolume(func(c *Call, vc *volumeCall) error {
				n, err := validateNumber([]byte(strings.TrimSpace(string(c.Payload))), "volume size", false)
				if err != nil {
					return err
				}
				vc.n = n
				c.Perm = []events.KV{{Key: "size", Value: n}}
				return nil
			}),
			Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
				m, _ := c.Server.storage()
				vc := c.State.(*volumeCall)
				if err := m.Resize(ctx, vc.vol, uint64(vc.n)); err != nil {
					return nil, 0, err
				}
				return recordVolumeAttr(c, "size", strconv.FormatInt(vc.n, 10))
			}},
		&Method{Name: "admin.vm.volume.Clear", Arg: Required, Write: true, Prepare: prepareVolume(nil), Run: volumeClear},
		&Method{Name: "admin.vm.volume.Set.revisions_to_keep", Arg: Required, Payload: Required, Write: true,
			Prepare: prepareVolume(func(c *Call, vc *volumeCall) error {
				n, err := validateNumber(c.Payload, "revisions to keep", true)
				if err != nil {
					return err
				}
				vc.n = n
				c.Perm = []events.KV{{Key: "newvalue", Value: n}}
				return nil
			}),
			Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
				vc := c.State.(*volumeCall)
				if vc.n != 0 {
					// a driver without revisions keeps none
					if m, err := c.Server.storage(); err == nil {
						if di, err := m.DriverInfo(ctx, vc.vol.Pool.Driver); err == nil && !di.Revisions {
							return nil, 0, qerr.New(qerr.ValueError, "%s supports only revisions_to_keep=0", volumeClassName(vc.vol))
						}
					}
				}
				return recordVolumeAttr(c, "revisions_to_keep", strconv.FormatInt(vc.n, 10))
			}},
		&Method{Name: "admin.vm.volume.Set.rw", Arg: Required, Payload: Required, Write: true,
			Prepare: prepareVolumeBool,
			Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
				vc := c.State.(*volumeCall)
				version, err := c.App.Write(func() error {
					if c.Server.runs(c.Dest) {
						return qerr.New(qerr.VMNotHalted, "Domain is powered on: %s", property.PyRepr(c.Dest.Name()))
					}
					return c.Dest.SetVolumeAttr(c.Arg, "rw", boolText(vc.b))
				})
				return nil, version, err
			}},
		&Method{Name: "admin.vm.volume.Set.ephemeral", Arg: Required, Payload: Required, Write: true,
			Prepare: prepareVolumeBool,
			Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
				return recordVolumeAttr(c, "ephemeral", boolText(c.State.(*volumeCall).b))
			}},
	)
}

// volumeCall is what a volume method's Prepare found: the volume and the
// parsed payload.
type volumeCall struct {
	vol  storage.Volume
	n    int64
	b    bool
	text string
	src  storage.Volume // CloneTo
}

// prepareVolume checks that the argument is a volume of the destination
// (PermissionDenied otherwise, as enforce_arg), reads its record, and runs
// the method's own payload checks.
func prepareVolume(more func(c *Call, vc *volumeCall) error) func(ctx context.Context, c *Call) error {
	return volumePreparer(func(c *Call, names []string) error {
		return enforceArg(c.Arg, names, c.Dest.Name()+" volumes")
	}, more)
}

// volumePreparer is a Prepare step for the volume methods: argCheck
// refuses an argument that is not one of the destination's volumes (the
// admin and internal APIs word it differently), then the volume's record
// is read into c.State and more, if any, checks the rest.
func volumePreparer(argCheck func(c *Call, names []string) error, more func(c *Call, vc *volumeCall) error) func(ctx context.Context, c *Call) error {
	return func(ctx context.Context, c *Call) error {
		vc := &volumeCall{}
		err := c.App.Read(func() error {
			if err := argCheck(c, storage.VolumeNames(c.Dest)); err != nil {
				return err
			}
			m, err := c.Server.storage()
			if err != nil {
				return err
			}
			vc.vol, err = m.Volume(c.Dest, c.Arg)
			return err
		})
		if err != nil {
			return err
		}
		c.State = vc
		if more != nil {
			return more(c, vc)
		}
		return nil
	}
}

var prepareVolumeBool = prepareVolume(func(c *Call, vc *volumeCall) error {
	b, err := boolPayload(c.Payload)
	if err != nil {
		return err
	}
	vc.b = b
	c.Perm = []events.KV{{Key: "newvalue", Value: b}}
	return nil
})

// recordVolumeAttr sets an attribute of the destination's volume record.
func recordVolumeAttr(c *Call, key, value string) ([]byte, uint64, error) {
	version, err := c.App.Write(func() error { return c.Dest.SetVolumeAttr(c.Arg, key, value) })
	return nil, version, err
}

// volumeClassName names a driver's volumes as the reference's messages
// do.
func volumeClassName(v storage.Volume) string {
	if v.Pool.Driver == "linux-kernel" {
		return "LinuxModules"
	}
	return "Volumes of pool " + v.Pool.Name + " (driver " + v.Pool.Driver + ")"
}

// volumeInfo answers admin.vm.volume.Info in the reference's key order.
func volumeInfo(ctx context.Context, c *Call) ([]byte, uint64, error) {
	m, _ := c.Server.storage()
	v := c.State.(*volumeCall).vol
	st, err := m.Info(ctx, v)
	if err != nil {
		return nil, 0, err
	}
	size := v.Spec.Size
	if size == 0 {
		size = st.Size
	}
	var b []byte
	kv := func(k, val string) {
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, val...)
		b = append(b, '\n')
	}
	kv("pool", v.Pool.Name)
	kv("vid", v.Spec.VID)
	kv("size", strconv.FormatUint(size, 10))
	kv("usage", strconv.FormatUint(st.Usage, 10))
	kv("rw", boolText(v.Spec.RW))
	kv("source", v.Spec.SourceVID)
	kv("path", st.Path)
	kv("save_on_stop", boolText(v.Spec.SaveOnStop))
	kv("snap_on_start", boolText(v.Spec.SnapOnStart))
	kv("revisions_to_keep", strconv.Itoa(v.Spec.RevisionsToKeep))
	kv("ephemeral", boolText(v.Attrs["ephemeral"] == "True"))
	kv("is_outdated", boolText(st.Outdated))
	return b, 0, nil
}

// volumeClear replaces a volume's content with zeros: an import of
// nothing, with the import events.
func volumeClear(ctx context.Context, c *Call) ([]byte, uint64, error) {
	m, _ := c.Server.storage()
	v := c.State.(*volumeCall).vol
	size := v.Spec.Size
	path, err := m.ImportBegin(ctx, v, size)
	if err != nil {
		return nil, 0, err
	}
	fire := func(name string, kw ...events.KV) {
		_, _ = c.App.Write(func() error { return c.Dest.FireEvent(name, false, kw...) })
	}
	fire("domain-volume-import-begin", events.KV{Key: "volume", Value: c.Arg}, events.KV{Key: "size", Value: size})
	err = zeroImport(path, size)
	if err == nil {
		err = m.ImportEnd(ctx, v, true)
	} else {
		_ = m.ImportEnd(context.WithoutCancel(ctx), v, false)
	}
	if err != nil {
		fire("domain-volume-import-end", events.KV{Key: "volume", Value: c.Arg}, events.KV{Key: "success", Value: false})
		return nil, 0, err
	}
	fire("domain-volume-import-end", events.KV{Key: "volume", Value: c.Arg}, events.KV{Key: "success", Value: true})
	return nil, 0, nil
}

// zeroImport makes an import path hold size bytes of zeros: a regular file
// is truncated (sparse); a block device is left as the driver gave it
// (drivers give a fresh, zeroed volume), as the reference does.
func zeroImport(path string, size uint64) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return qerr.Wrap(qerr.StoragePoolError, err, "clearing the volume: %v", err)
		}
		defer f.Close()
		return f.Truncate(int64(size))
	}
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if err := os.Truncate(path, 0); err != nil {
		return qerr.Wrap(qerr.StoragePoolError, err, "clearing the volume: %v", err)
	}
	if err := os.Truncate(path, int64(size)); err != nil {
		return qerr.Wrap(qerr.StoragePoolError, err, "clearing the volume: %v", err)
	}
	return nil
}

// Clone tokens: admin.vm.volume.CloneFrom hands one out, CloneTo spends
// it. They live in the server (not the model), expire, and are single-use.
const (
	cloneTokenTTL   = time.Hour
	cloneTokenLimit = 4096
	tokenChars      = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

type cloneSource struct {
	qube    *qubes.Qube
	volume  string
	expires time.Time
}

type cloneTokens struct {
	mu     sync.Mutex
	tokens map[string]cloneSource
	now    func() time.Time
}

func (t *cloneTokens) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// add returns a new token for q's volume.
func (t *cloneTokens) add(q *qubes.Qube, volume string) (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	b := make([]byte, len(raw))
	for i, r := range raw {
		b[i] = tokenChars[int(r)%len(tokenChars)]
	}
	token := string(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tokens == nil {
		t.tokens = map[string]cloneSource{}
	}
	now := t.clock()
	for k, s := range t.tokens {
		if now.After(s.expires) {
			delete(t.tokens, k)
		}
	}
	if _, dup := t.tokens[token]; dup {
		return "", qerr.New(qerr.VolumeCopyInUse, "Some other volume is being copied into this one; try again")
	}
	if len(t.tokens) >= cloneTokenLimit {
		return "", qerr.New(qerr.VolumeCopyInUse, "Too many clones pending (%d); try again later", cloneTokenLimit)
	}
	t.tokens[token] = cloneSource{qube: q, volume: volume, expires: now.Add(cloneTokenTTL)}
	return token, nil
}

// take spends a token.
func (t *cloneTokens) take(token string) (cloneSource, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.tokens[token]
	delete(t.tokens, token)
	if ok && t.clock().After(s.expires) {
		return cloneSource{}, false
	}
	return s, ok
}

func prepareCloneTo(c *Call, vc *volumeCall) error {
	if !isASCII(string(c.Payload)) {
		return qerr.New(qerr.ProtocolError, "Token contains non-ASCII characters")
	}
	src, ok := c.Server.clones.take(strings.TrimSpace(string(c.Payload)))
	if !ok {
		return qerr.New(qerr.VolumeTokenNotFound, "'Token to clone volume of qube was not found'")
	}
	m, _ := c.Server.storage()
	err := c.App.Read(func() error {
		if cur, err := c.App.Qube(src.qube.Name()); err != nil || cur != src.qube {
			return qerr.New(qerr.StoragePoolError, "the source of the clone is gone: qube %s was removed", src.qube.Name())
		}
		var err error
		if vc.src, err = m.Volume(src.qube, src.volume); err != nil {
			return qerr.New(qerr.StoragePoolError, "the source of the clone is gone: %v", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.Perm = []events.KV{{Key: "src_volume", Value: vc.src.Spec.VID}, {Key: "dst_volume", Value: vc.vol.Spec.VID}}
	return nil
}

// cloneTo copies the token's volume over the destination volume (the
// Manager records and commits the size the copy has).
func cloneTo(ctx context.Context, c *Call) ([]byte, uint64, error) {
	m, _ := c.Server.storage()
	vc := c.State.(*volumeCall)
	return nil, 0, m.Clone(ctx, vc.vol, vc.src, nil)
}
