package pool

import "context"

// UnimplementedDriver is embedded in a driver struct so that the driver keeps
// compiling when a later SDK version adds methods to Driver, and so that a
// driver need not write the methods it has nothing to do in.
//
// Its methods return ErrUnimplemented, except the few whose "nothing to do"
// is a correct answer for a driver that does not override them: Configure
// (accepts an empty plugin config and refuses any key), Open, Setup, Destroy
// and ExportEnd (succeed). Declare in Capabilities only what the driver
// really implements.
type UnimplementedDriver struct{}

func (UnimplementedDriver) Info(context.Context) (Info, error) {
	return Info{}, Errorf(ErrUnimplemented, "Info not implemented")
}

// Configure accepts an empty config and refuses any key: the driver has no
// plugin-wide settings.
func (UnimplementedDriver) Configure(_ context.Context, config []byte) error {
	return DecodeConfig(config, &struct{}{})
}

func (UnimplementedDriver) ValidateConfig(context.Context, map[string]string) error {
	return Errorf(ErrUnimplemented, "ValidateConfig not implemented")
}

func (UnimplementedDriver) Open(context.Context, Pool) error    { return nil }
func (UnimplementedDriver) Setup(context.Context, Pool) error   { return nil }
func (UnimplementedDriver) Destroy(context.Context, Pool) error { return nil }

func (UnimplementedDriver) Usage(context.Context, Pool) (Usage, error) {
	return Usage{}, Errorf(ErrUnimplemented, "Usage not implemented")
}

func (UnimplementedDriver) ListVolumes(context.Context, Pool) ([]VolumeState, error) {
	return nil, Errorf(ErrUnimplemented, "ListVolumes not implemented")
}

func (UnimplementedDriver) Create(context.Context, Pool, Volume) error {
	return Errorf(ErrUnimplemented, "Create not implemented")
}

func (UnimplementedDriver) Remove(context.Context, Pool, Volume) error {
	return Errorf(ErrUnimplemented, "Remove not implemented")
}

func (UnimplementedDriver) Start(context.Context, Pool, Volume) (BlockDevice, error) {
	return BlockDevice{}, Errorf(ErrUnimplemented, "Start not implemented")
}

func (UnimplementedDriver) Stop(context.Context, Pool, Volume) error {
	return Errorf(ErrUnimplemented, "Stop not implemented")
}

func (UnimplementedDriver) Resize(context.Context, Pool, Volume, uint64) error {
	return Errorf(ErrUnimplemented, "Resize not implemented")
}

func (UnimplementedDriver) Revert(context.Context, Pool, Volume, string) error {
	return Errorf(ErrUnimplemented, "Revert not implemented")
}

func (UnimplementedDriver) ListRevisions(context.Context, Pool, Volume) ([]Revision, error) {
	return nil, Errorf(ErrUnimplemented, "ListRevisions not implemented")
}

func (UnimplementedDriver) VolumeInfo(context.Context, Pool, Volume) (VolumeState, error) {
	return VolumeState{}, Errorf(ErrUnimplemented, "VolumeInfo not implemented")
}

func (UnimplementedDriver) Verify(context.Context, Pool, Volume) error {
	return Errorf(ErrUnimplemented, "Verify not implemented")
}

func (UnimplementedDriver) CloneFrom(context.Context, Pool, Volume, Volume) error {
	return Errorf(ErrUnimplemented, "CloneFrom not implemented")
}

func (UnimplementedDriver) ImportBegin(context.Context, Pool, Volume, uint64) (string, error) {
	return "", Errorf(ErrUnimplemented, "ImportBegin not implemented")
}

func (UnimplementedDriver) ImportEnd(context.Context, Pool, Volume, bool) error {
	return Errorf(ErrUnimplemented, "ImportEnd not implemented")
}

func (UnimplementedDriver) ExportBegin(context.Context, Pool, Volume) (string, error) {
	return "", Errorf(ErrUnimplemented, "ExportBegin not implemented")
}

func (UnimplementedDriver) ExportEnd(context.Context, Pool, Volume, string) error { return nil }

var _ Driver = UnimplementedDriver{}
