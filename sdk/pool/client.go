package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	storagev1 "github.com/qubesgo/qubesd/sdk/proto/storage/v1"
)

// Client is the daemon half of the protocol: a Driver backed by a
// storage.v1 PoolDriver client, so that the daemon uses a plugin exactly as
// it would use an in-process driver. Errors come back as the kinds the
// plugin sent (see FromStatus).
//
// Methods a plugin may lack are tolerated: Unimplemented from Open, Setup,
// Destroy and ExportEnd means "nothing to do" (nil); from Configure, nil
// when the config is empty. Everything else reports ErrUnimplemented.
//
// Once the plugin process has exited, every call fails with an error of
// kind ErrUnavailable that says so.
type Client struct {
	c storagev1.PoolDriverClient
	// done is cancelled when the plugin process exits (go-plugin's
	// GRPCClient context); nil when unknown.
	done context.Context
}

var _ Driver = (*Client)(nil)

// NewClient returns a Driver that calls c.
func NewClient(c storagev1.PoolDriverClient) *Client {
	return &Client{c: c}
}

// err converts a call's error: a dead plugin is ErrUnavailable, anything
// else is what the plugin sent.
func (c *Client) err(method string, err error) error {
	if err == nil {
		return nil
	}
	if c.done != nil && c.done.Err() != nil {
		return &Error{Kind: ErrUnavailable, Message: fmt.Sprintf("pool driver plugin exited (%s: %s)", method, status.Convert(err).Message())}
	}
	return FromStatus(err)
}

// optional is err, except that Unimplemented means "nothing to do".
func (c *Client) optional(method string, err error) error {
	if status.Code(err) == codes.Unimplemented {
		return nil
	}
	return c.err(method, err)
}

func (c *Client) Info(ctx context.Context) (Info, error) {
	r, err := c.c.Info(ctx, &storagev1.InfoRequest{})
	if err != nil {
		return Info{}, c.err("Info", err)
	}
	return infoFromProto(r), nil
}

func (c *Client) Configure(ctx context.Context, config []byte) error {
	_, err := c.c.Configure(ctx, &storagev1.ConfigureRequest{ConfigJson: config})
	if t := bytes.TrimSpace(config); len(t) == 0 || bytes.Equal(t, []byte("{}")) {
		return c.optional("Configure", err)
	}
	if status.Code(err) == codes.Unimplemented {
		return Errorf(ErrInvalid, "plugin config: the plugin takes no config (it does not implement Configure)")
	}
	return c.err("Configure", err)
}

func (c *Client) ValidateConfig(ctx context.Context, config map[string]string) error {
	_, err := c.c.ValidateConfig(ctx, &storagev1.ValidateConfigRequest{Config: config})
	return c.err("ValidateConfig", err)
}

func (c *Client) Open(ctx context.Context, p Pool) error {
	_, err := c.c.Open(ctx, &storagev1.PoolRequest{Pool: poolToProto(p)})
	return c.optional("Open", err)
}

func (c *Client) Setup(ctx context.Context, p Pool) error {
	_, err := c.c.Setup(ctx, &storagev1.PoolRequest{Pool: poolToProto(p)})
	return c.optional("Setup", err)
}

func (c *Client) Destroy(ctx context.Context, p Pool) error {
	_, err := c.c.Destroy(ctx, &storagev1.PoolRequest{Pool: poolToProto(p)})
	return c.optional("Destroy", err)
}

func (c *Client) Usage(ctx context.Context, p Pool) (Usage, error) {
	r, err := c.c.Usage(ctx, &storagev1.PoolRequest{Pool: poolToProto(p)})
	if err != nil {
		return Usage{}, c.err("Usage", err)
	}
	return Usage{Size: r.GetSize(), Usage: r.GetUsage(), Details: r.GetDetails()}, nil
}

func (c *Client) ListVolumes(ctx context.Context, p Pool) ([]VolumeState, error) {
	r, err := c.c.ListVolumes(ctx, &storagev1.PoolRequest{Pool: poolToProto(p)})
	if err != nil {
		return nil, c.err("ListVolumes", err)
	}
	vols := make([]VolumeState, len(r.GetVolumes()))
	for i, v := range r.GetVolumes() {
		vols[i] = stateFromProto(v)
	}
	return vols, nil
}

func vreq(p Pool, v Volume) *storagev1.VolumeRequest {
	return &storagev1.VolumeRequest{Pool: poolToProto(p), Volume: volumeToProto(v)}
}

func (c *Client) Create(ctx context.Context, p Pool, v Volume) error {
	_, err := c.c.Create(ctx, vreq(p, v))
	return c.err("Create", err)
}

func (c *Client) Remove(ctx context.Context, p Pool, v Volume) error {
	_, err := c.c.Remove(ctx, vreq(p, v))
	return c.err("Remove", err)
}

func (c *Client) Start(ctx context.Context, p Pool, v Volume) (BlockDevice, error) {
	r, err := c.c.Start(ctx, vreq(p, v))
	if err != nil {
		return BlockDevice{}, c.err("Start", err)
	}
	d := r.GetDevice()
	return BlockDevice{Path: d.GetPath(), RW: d.GetRw(), DevType: d.GetDevtype()}, nil
}

func (c *Client) Stop(ctx context.Context, p Pool, v Volume) error {
	_, err := c.c.Stop(ctx, vreq(p, v))
	return c.err("Stop", err)
}

func (c *Client) Resize(ctx context.Context, p Pool, v Volume, size uint64) error {
	_, err := c.c.Resize(ctx, &storagev1.ResizeRequest{Pool: poolToProto(p), Volume: volumeToProto(v), Size: size})
	return c.err("Resize", err)
}

func (c *Client) Revert(ctx context.Context, p Pool, v Volume, revision string) error {
	_, err := c.c.Revert(ctx, &storagev1.RevertRequest{Pool: poolToProto(p), Volume: volumeToProto(v), Revision: revision})
	return c.err("Revert", err)
}

func (c *Client) ListRevisions(ctx context.Context, p Pool, v Volume) ([]Revision, error) {
	r, err := c.c.ListRevisions(ctx, vreq(p, v))
	if err != nil {
		return nil, c.err("ListRevisions", err)
	}
	revs := make([]Revision, len(r.GetRevisions()))
	for i, rev := range r.GetRevisions() {
		revs[i] = revisionFromProto(rev)
	}
	return revs, nil
}

func (c *Client) VolumeInfo(ctx context.Context, p Pool, v Volume) (VolumeState, error) {
	r, err := c.c.VolumeInfo(ctx, vreq(p, v))
	if err != nil {
		return VolumeState{}, c.err("VolumeInfo", err)
	}
	return stateFromProto(r.GetState()), nil
}

func (c *Client) Verify(ctx context.Context, p Pool, v Volume) error {
	_, err := c.c.Verify(ctx, vreq(p, v))
	return c.err("Verify", err)
}

func (c *Client) CloneFrom(ctx context.Context, p Pool, v, src Volume) error {
	_, err := c.c.CloneFrom(ctx, &storagev1.CloneFromRequest{Pool: poolToProto(p), Volume: volumeToProto(v), Source: volumeToProto(src)})
	return c.err("CloneFrom", err)
}

func (c *Client) ImportBegin(ctx context.Context, p Pool, v Volume, size uint64) (string, error) {
	r, err := c.c.ImportBegin(ctx, &storagev1.ImportBeginRequest{Pool: poolToProto(p), Volume: volumeToProto(v), Size: size})
	if err != nil {
		return "", c.err("ImportBegin", err)
	}
	if r.GetPath() == "" {
		return "", errors.New("pool driver plugin: ImportBegin returned no path")
	}
	return r.GetPath(), nil
}

func (c *Client) ImportEnd(ctx context.Context, p Pool, v Volume, success bool) error {
	_, err := c.c.ImportEnd(ctx, &storagev1.ImportEndRequest{Pool: poolToProto(p), Volume: volumeToProto(v), Success: success})
	return c.err("ImportEnd", err)
}

func (c *Client) ExportBegin(ctx context.Context, p Pool, v Volume) (string, error) {
	r, err := c.c.ExportBegin(ctx, vreq(p, v))
	if err != nil {
		return "", c.err("ExportBegin", err)
	}
	if r.GetPath() == "" {
		return "", errors.New("pool driver plugin: ExportBegin returned no path")
	}
	return r.GetPath(), nil
}

func (c *Client) ExportEnd(ctx context.Context, p Pool, v Volume, path string) error {
	_, err := c.c.ExportEnd(ctx, &storagev1.ExportEndRequest{Pool: poolToProto(p), Volume: volumeToProto(v), Path: path})
	return c.optional("ExportEnd", err)
}
