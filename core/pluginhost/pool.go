package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// poolProxy is a pool.Driver that forwards to whichever process of the
// plugin currently runs, with a deadline on every call. It is what the core
// holds: restarts happen underneath it.
type poolProxy struct{ in *instance }

var _ pool.Driver = (*poolProxy)(nil)

// call runs fn on the running driver under the call deadline. A plugin
// that is not running fails fast with pool.ErrUnavailable; one that does
// not answer in time fails with context.DeadlineExceeded, both with the
// plugin's name in the message.
func call[T any](ctx context.Context, p *poolProxy, method string, fn func(context.Context, pool.Driver) (T, error)) (T, error) {
	var zero T
	d, err := p.in.current()
	if err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.in.host.opts.CallTimeout)
	defer cancel()
	v, err := fn(ctx, d)
	if err == nil {
		return v, nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return zero, fmt.Errorf("plugin %s did not answer %s within %s: %w", p.in.name, method, p.in.host.opts.CallTimeout, err)
	}
	if errors.Is(err, pool.ErrUnavailable) {
		p.in.failed(method, err)
		return zero, fmt.Errorf("plugin %s failed during %s: %w", p.in.name, method, err)
	}
	return zero, err
}

// do is call for methods that return only an error.
func do(ctx context.Context, p *poolProxy, method string, fn func(context.Context, pool.Driver) error) error {
	_, err := call(ctx, p, method, func(ctx context.Context, d pool.Driver) (struct{}, error) { return struct{}{}, fn(ctx, d) })
	return err
}

func (p *poolProxy) Info(ctx context.Context) (pool.Info, error) {
	return call(ctx, p, "Info", func(ctx context.Context, d pool.Driver) (pool.Info, error) { return d.Info(ctx) })
}

func (p *poolProxy) Configure(ctx context.Context, config []byte) error {
	return do(ctx, p, "Configure", func(ctx context.Context, d pool.Driver) error { return d.Configure(ctx, config) })
}

func (p *poolProxy) ValidateConfig(ctx context.Context, config map[string]string) error {
	return do(ctx, p, "ValidateConfig", func(ctx context.Context, d pool.Driver) error { return d.ValidateConfig(ctx, config) })
}

func (p *poolProxy) Open(ctx context.Context, pl pool.Pool) error {
	return do(ctx, p, "Open", func(ctx context.Context, d pool.Driver) error { return d.Open(ctx, pl) })
}

func (p *poolProxy) Setup(ctx context.Context, pl pool.Pool) error {
	return do(ctx, p, "Setup", func(ctx context.Context, d pool.Driver) error { return d.Setup(ctx, pl) })
}

func (p *poolProxy) Destroy(ctx context.Context, pl pool.Pool) error {
	return do(ctx, p, "Destroy", func(ctx context.Context, d pool.Driver) error { return d.Destroy(ctx, pl) })
}

func (p *poolProxy) Usage(ctx context.Context, pl pool.Pool) (pool.Usage, error) {
	return call(ctx, p, "Usage", func(ctx context.Context, d pool.Driver) (pool.Usage, error) { return d.Usage(ctx, pl) })
}

func (p *poolProxy) ListVolumes(ctx context.Context, pl pool.Pool) ([]pool.VolumeState, error) {
	return call(ctx, p, "ListVolumes", func(ctx context.Context, d pool.Driver) ([]pool.VolumeState, error) { return d.ListVolumes(ctx, pl) })
}

func (p *poolProxy) Create(ctx context.Context, pl pool.Pool, v pool.Volume) error {
	return do(ctx, p, "Create", func(ctx context.Context, d pool.Driver) error { return d.Create(ctx, pl, v) })
}

func (p *poolProxy) Remove(ctx context.Context, pl pool.Pool, v pool.Volume) error {
	return do(ctx, p, "Remove", func(ctx context.Context, d pool.Driver) error { return d.Remove(ctx, pl, v) })
}

func (p *poolProxy) Start(ctx context.Context, pl pool.Pool, v pool.Volume) (pool.BlockDevice, error) {
	return call(ctx, p, "Start", func(ctx context.Context, d pool.Driver) (pool.BlockDevice, error) { return d.Start(ctx, pl, v) })
}

func (p *poolProxy) Stop(ctx context.Context, pl pool.Pool, v pool.Volume) error {
	return do(ctx, p, "Stop", func(ctx context.Context, d pool.Driver) error { return d.Stop(ctx, pl, v) })
}

func (p *poolProxy) Resize(ctx context.Context, pl pool.Pool, v pool.Volume, size uint64) error {
	return do(ctx, p, "Resize", func(ctx context.Context, d pool.Driver) error { return d.Resize(ctx, pl, v, size) })
}

func (p *poolProxy) Revert(ctx context.Context, pl pool.Pool, v pool.Volume, revision string) error {
	return do(ctx, p, "Revert", func(ctx context.Context, d pool.Driver) error { return d.Revert(ctx, pl, v, revision) })
}

func (p *poolProxy) ListRevisions(ctx context.Context, pl pool.Pool, v pool.Volume) ([]pool.Revision, error) {
	return call(ctx, p, "ListRevisions", func(ctx context.Context, d pool.Driver) ([]pool.Revision, error) { return d.ListRevisions(ctx, pl, v) })
}

func (p *poolProxy) VolumeInfo(ctx context.Context, pl pool.Pool, v pool.Volume) (pool.VolumeState, error) {
	return call(ctx, p, "VolumeInfo", func(ctx context.Context, d pool.Driver) (pool.VolumeState, error) { return d.VolumeInfo(ctx, pl, v) })
}

func (p *poolProxy) Verify(ctx context.Context, pl pool.Pool, v pool.Volume) error {
	return do(ctx, p, "Verify", func(ctx context.Context, d pool.Driver) error { return d.Verify(ctx, pl, v) })
}

func (p *poolProxy) CloneFrom(ctx context.Context, pl pool.Pool, v, src pool.Volume) error {
	return do(ctx, p, "CloneFrom", func(ctx context.Context, d pool.Driver) error { return d.CloneFrom(ctx, pl, v, src) })
}

func (p *poolProxy) ImportBegin(ctx context.Context, pl pool.Pool, v pool.Volume, size uint64) (string, error) {
	return call(ctx, p, "ImportBegin", func(ctx context.Context, d pool.Driver) (string, error) { return d.ImportBegin(ctx, pl, v, size) })
}

func (p *poolProxy) ImportEnd(ctx context.Context, pl pool.Pool, v pool.Volume, success bool) error {
	return do(ctx, p, "ImportEnd", func(ctx context.Context, d pool.Driver) error { return d.ImportEnd(ctx, pl, v, success) })
}

func (p *poolProxy) ExportBegin(ctx context.Context, pl pool.Pool, v pool.Volume) (string, error) {
	return call(ctx, p, "ExportBegin", func(ctx context.Context, d pool.Driver) (string, error) { return d.ExportBegin(ctx, pl, v) })
}

func (p *poolProxy) ExportEnd(ctx context.Context, pl pool.Pool, v pool.Volume, path string) error {
	return do(ctx, p, "ExportEnd", func(ctx context.Context, d pool.Driver) error { return d.ExportEnd(ctx, pl, v, path) })
}
