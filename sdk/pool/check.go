package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

var (
	vidElement = regexp.MustCompile(`^[A-Za-z0-9_.:+@-]+$`)
	revisionID = regexp.MustCompile(`^[A-Za-z0-9:._-]+$`)
)

// Validate checks the pool reference: a name is required.
func (p Pool) Validate() error {
	if p.Name == "" {
		return Errorf(ErrInvalid, "pool name is empty")
	}
	return nil
}

// Validate checks a volume spec the way the SDK does before a driver sees
// it: vid well formed (see Volume.VID), revisions_to_keep >= -1,
// snap_on_start exactly when a source is set, the source not the volume
// itself. Errors are ErrInvalid.
func (v Volume) Validate() error {
	if err := ValidateVID(v.VID); err != nil {
		return err
	}
	if v.RevisionsToKeep < -1 {
		return Errorf(ErrInvalid, "volume %s: revisions_to_keep %d: must be -1 or more", v.VID, v.RevisionsToKeep)
	}
	switch {
	case v.SnapOnStart && v.SourceVID == "":
		return Errorf(ErrInvalid, "volume %s: snap_on_start without a source", v.VID)
	case !v.SnapOnStart && v.SourceVID != "":
		return Errorf(ErrInvalid, "volume %s: source %s without snap_on_start", v.VID, v.SourceVID)
	case v.SourceVID == v.VID && v.VID != "":
		return Errorf(ErrInvalid, "volume %s: is its own source", v.VID)
	}
	if v.SourceVID != "" {
		if err := ValidateVID(v.SourceVID); err != nil {
			return Errorf(ErrInvalid, "volume %s: source: %s", v.VID, err)
		}
	}
	return nil
}

// ValidateVID checks a volume id: slash-separated elements of
// [A-Za-z0-9_.:+@-], none empty, "." or "..". A driver may therefore use a
// vid as a relative path under its own directory.
func ValidateVID(vid string) error {
	if vid == "" {
		return Errorf(ErrInvalid, "volume id is empty")
	}
	for _, el := range strings.Split(vid, "/") {
		if el == "." || el == ".." || !vidElement.MatchString(el) {
			return Errorf(ErrInvalid, "volume id %q: elements must be [A-Za-z0-9_.:+@-]+, not . or ..", vid)
		}
	}
	return nil
}

// ValidateRevisionID checks a revision id: "" (the latest) or
// [A-Za-z0-9:._-]+.
func ValidateRevisionID(id string) error {
	if id != "" && !revisionID.MatchString(id) {
		return Errorf(ErrInvalid, "revision id %q: must be [A-Za-z0-9:._-]+", id)
	}
	return nil
}

// DecodeConfig decodes a plugin config (the JSON object Configure receives)
// into v, a pointer to a struct with json tags, strictly: an unknown key is
// an ErrInvalid error naming it. An empty config leaves v as it is.
func DecodeConfig(config []byte, v any) error {
	if len(bytes.TrimSpace(config)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(ErrInvalid, "plugin config: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// Check returns d behind the request checks pool.Serve puts in front of
// every driver: a call with an invalid pool, volume spec, revision id or
// size fails with ErrInvalid before reaching d, and so does a call whose
// pool config d's ValidateConfig refuses. Package pooltest runs drivers
// behind it, as they run in a plugin.
func Check(d Driver) Driver {
	if c, ok := d.(checked); ok {
		return c
	}
	return checked{d}
}

type checked struct{ d Driver }

// checkPV checks a request's pool and volumes. The pool config goes
// through the driver's own ValidateConfig, so that a driver can trust
// p.Config in every call (ErrUnimplemented from ValidateConfig means the
// driver checks nothing).
func (c checked) checkPV(ctx context.Context, p Pool, vs ...Volume) error {
	if err := p.Validate(); err != nil {
		return err
	}
	for _, v := range vs {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if err := c.d.ValidateConfig(ctx, p.Config); err != nil && !errors.Is(err, ErrUnimplemented) {
		return fmt.Errorf("pool %s: %w", p.Name, err)
	}
	return nil
}

func (c checked) Info(ctx context.Context) (Info, error) { return c.d.Info(ctx) }

func (c checked) Configure(ctx context.Context, config []byte) error {
	if len(bytes.TrimSpace(config)) > 0 && !json.Valid(config) {
		return Errorf(ErrInvalid, "plugin config: not valid JSON")
	}
	return c.d.Configure(ctx, config)
}

func (c checked) ValidateConfig(ctx context.Context, config map[string]string) error {
	return c.d.ValidateConfig(ctx, config)
}

func (c checked) Open(ctx context.Context, p Pool) error {
	if err := c.checkPV(ctx, p); err != nil {
		return err
	}
	return c.d.Open(ctx, p)
}

func (c checked) Setup(ctx context.Context, p Pool) error {
	if err := c.checkPV(ctx, p); err != nil {
		return err
	}
	return c.d.Setup(ctx, p)
}

func (c checked) Destroy(ctx context.Context, p Pool) error {
	if err := c.checkPV(ctx, p); err != nil {
		return err
	}
	return c.d.Destroy(ctx, p)
}

func (c checked) Usage(ctx context.Context, p Pool) (Usage, error) {
	if err := c.checkPV(ctx, p); err != nil {
		return Usage{}, err
	}
	return c.d.Usage(ctx, p)
}

func (c checked) ListVolumes(ctx context.Context, p Pool) ([]VolumeState, error) {
	if err := c.checkPV(ctx, p); err != nil {
		return nil, err
	}
	return c.d.ListVolumes(ctx, p)
}

func (c checked) Create(ctx context.Context, p Pool, v Volume) error {
	if err := c.checkPV(ctx, p, v); err != nil {
		return err
	}
	return c.d.Create(ctx, p, v)
}

func (c checked) Remove(ctx context.Context, p Pool, v Volume) error {
	if err := c.checkPV(ctx, p, v); err != nil {
		return err
	}
	return c.d.Remove(ctx, p, v)
}

func (c checked) Start(ctx context.Context, p Pool, v Volume) (BlockDevice, error) {
	if err := c.checkPV(ctx, p, v); err != nil {
		return BlockDevice{}, err
	}
	return c.d.Start(ctx, p, v)
}

func (c checked) Stop(ctx context.Context, p Pool, v Volume) error {
	if err := c.checkPV(ctx, p, v); err != nil {
		return err
	}
	return c.d.Stop(ctx, p, v)
}

func (c checked) Resize(ctx context.Context, p Pool, v Volume, size uint64) error {
	if size == 0 {
		return Errorf(ErrInvalid, "volume %s: resize to 0 bytes", v.VID)
	}
	if err := c.checkPV(ctx, p, v); err != nil {
		return err
	}
	return c.d.Resize(ctx, p, v, size)
}

func (c checked) Revert(ctx context.Context, p Pool, v Volume, revision string) error {
	if err := ValidateRevisionID(revision); err != nil {
		return err
	}
	if err := c.checkPV(ctx, p, v); err != nil {
		return err
	}
	return c.d.Revert(ctx, p, v, revision)
}

func (c checked) ListRevisions(ctx context.Context, p Pool, v Volume) ([]Revision, error) {
	if err := c.checkPV(ctx, p, v); err != nil {
		return nil, err
	}
	return c.d.ListRevisions(ctx, p, v)
}

func (c checked) VolumeInfo(ctx context.Context, p Pool, v Volume) (VolumeState, error) {
	if err := c.checkPV(ctx, p, v); err != nil {
		return VolumeState{}, err
	}
	return c.d.VolumeInfo(ctx, p, v)
}

func (c checked) Verify(ctx context.Context, p Pool, v Volume) error {
	if err := c.checkPV(ctx, p, v); err != nil {
		return err
	}
	return c.d.Verify(ctx, p, v)
}

func (c checked) CloneFrom(ctx context.Context, p Pool, v, src Volume) error {
	if v.VID == src.VID {
		return Errorf(ErrInvalid, "volume %s: cannot be cloned from itself", v.VID)
	}
	if err := c.checkPV(ctx, p, v, src); err != nil {
		return err
	}
	return c.d.CloneFrom(ctx, p, v, src)
}

func (c checked) ImportBegin(ctx context.Context, p Pool, v Volume, size uint64) (string, error) {
	if err := c.checkPV(ctx, p, v); err != nil {
		return "", err
	}
	return c.d.ImportBegin(ctx, p, v, size)
}

func (c checked) ImportEnd(ctx context.Context, p Pool, v Volume, success bool) error {
	if err := c.checkPV(ctx, p, v); err != nil {
		return err
	}
	return c.d.ImportEnd(ctx, p, v, success)
}

func (c checked) ExportBegin(ctx context.Context, p Pool, v Volume) (string, error) {
	if err := c.checkPV(ctx, p, v); err != nil {
		return "", err
	}
	return c.d.ExportBegin(ctx, p, v)
}

func (c checked) ExportEnd(ctx context.Context, p Pool, v Volume, path string) error {
	if err := c.checkPV(ctx, p, v); err != nil {
		return err
	}
	return c.d.ExportEnd(ctx, p, v, path)
}
