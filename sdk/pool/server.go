package pool

import (
	"context"

	"github.com/qubesgo/qubesd/sdk"
	storagev1 "github.com/qubesgo/qubesd/sdk/proto/storage/v1"
)

// NewServer adapts a Driver to storage.v1's PoolDriver gRPC service: the
// plugin half of the protocol. Requests are checked (see Check) before d
// sees them, errors are sent as gRPC statuses (see ToStatus), and Info's
// protocol version is filled in. pool.Serve uses it; call it directly only
// to serve a driver on a gRPC server of your own.
func NewServer(d Driver) storagev1.PoolDriverServer {
	return &server{d: Check(d)}
}

type server struct {
	storagev1.UnimplementedPoolDriverServer
	d Driver
}

func (s *server) Info(ctx context.Context, _ *storagev1.InfoRequest) (*storagev1.InfoResponse, error) {
	info, err := s.d.Info(ctx)
	if err != nil {
		return nil, ToStatus(err)
	}
	info.ProtocolVersion = sdk.ProtocolVersion
	return infoToProto(info), nil
}

func (s *server) Configure(ctx context.Context, r *storagev1.ConfigureRequest) (*storagev1.ConfigureResponse, error) {
	return &storagev1.ConfigureResponse{}, ToStatus(s.d.Configure(ctx, r.GetConfigJson()))
}

func (s *server) ValidateConfig(ctx context.Context, r *storagev1.ValidateConfigRequest) (*storagev1.ValidateConfigResponse, error) {
	cfg := r.GetConfig()
	if cfg == nil {
		cfg = map[string]string{}
	}
	return &storagev1.ValidateConfigResponse{}, ToStatus(s.d.ValidateConfig(ctx, cfg))
}

func (s *server) Open(ctx context.Context, r *storagev1.PoolRequest) (*storagev1.OpenResponse, error) {
	return &storagev1.OpenResponse{}, ToStatus(s.d.Open(ctx, poolFromProto(r.GetPool())))
}

func (s *server) Setup(ctx context.Context, r *storagev1.PoolRequest) (*storagev1.SetupResponse, error) {
	return &storagev1.SetupResponse{}, ToStatus(s.d.Setup(ctx, poolFromProto(r.GetPool())))
}

func (s *server) Destroy(ctx context.Context, r *storagev1.PoolRequest) (*storagev1.DestroyResponse, error) {
	return &storagev1.DestroyResponse{}, ToStatus(s.d.Destroy(ctx, poolFromProto(r.GetPool())))
}

func (s *server) Usage(ctx context.Context, r *storagev1.PoolRequest) (*storagev1.UsageResponse, error) {
	u, err := s.d.Usage(ctx, poolFromProto(r.GetPool()))
	if err != nil {
		return nil, ToStatus(err)
	}
	return &storagev1.UsageResponse{Size: u.Size, Usage: u.Usage, Details: u.Details}, nil
}

func (s *server) ListVolumes(ctx context.Context, r *storagev1.PoolRequest) (*storagev1.ListVolumesResponse, error) {
	vols, err := s.d.ListVolumes(ctx, poolFromProto(r.GetPool()))
	if err != nil {
		return nil, ToStatus(err)
	}
	resp := &storagev1.ListVolumesResponse{Volumes: make([]*storagev1.VolumeState, len(vols))}
	for i, v := range vols {
		resp.Volumes[i] = stateToProto(v)
	}
	return resp, nil
}

// volReq is what every volume request has.
type volReq interface {
	GetPool() *storagev1.Pool
	GetVolume() *storagev1.Volume
}

func pv(r volReq) (Pool, Volume) {
	return poolFromProto(r.GetPool()), volumeFromProto(r.GetVolume())
}

func (s *server) Create(ctx context.Context, r *storagev1.VolumeRequest) (*storagev1.CreateResponse, error) {
	p, v := pv(r)
	return &storagev1.CreateResponse{}, ToStatus(s.d.Create(ctx, p, v))
}

func (s *server) Remove(ctx context.Context, r *storagev1.VolumeRequest) (*storagev1.RemoveResponse, error) {
	p, v := pv(r)
	return &storagev1.RemoveResponse{}, ToStatus(s.d.Remove(ctx, p, v))
}

func (s *server) Start(ctx context.Context, r *storagev1.VolumeRequest) (*storagev1.StartResponse, error) {
	p, v := pv(r)
	bd, err := s.d.Start(ctx, p, v)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &storagev1.StartResponse{Device: &storagev1.BlockDevice{Path: bd.Path, Rw: bd.RW, Devtype: bd.DevType}}, nil
}

func (s *server) Stop(ctx context.Context, r *storagev1.VolumeRequest) (*storagev1.StopResponse, error) {
	p, v := pv(r)
	return &storagev1.StopResponse{}, ToStatus(s.d.Stop(ctx, p, v))
}

func (s *server) Resize(ctx context.Context, r *storagev1.ResizeRequest) (*storagev1.ResizeResponse, error) {
	p, v := pv(r)
	return &storagev1.ResizeResponse{}, ToStatus(s.d.Resize(ctx, p, v, r.GetSize()))
}

func (s *server) Revert(ctx context.Context, r *storagev1.RevertRequest) (*storagev1.RevertResponse, error) {
	p, v := pv(r)
	return &storagev1.RevertResponse{}, ToStatus(s.d.Revert(ctx, p, v, r.GetRevision()))
}

func (s *server) ListRevisions(ctx context.Context, r *storagev1.VolumeRequest) (*storagev1.ListRevisionsResponse, error) {
	p, v := pv(r)
	revs, err := s.d.ListRevisions(ctx, p, v)
	if err != nil {
		return nil, ToStatus(err)
	}
	resp := &storagev1.ListRevisionsResponse{Revisions: make([]*storagev1.Revision, len(revs))}
	for i, rev := range revs {
		resp.Revisions[i] = revisionToProto(rev)
	}
	return resp, nil
}

func (s *server) VolumeInfo(ctx context.Context, r *storagev1.VolumeRequest) (*storagev1.VolumeInfoResponse, error) {
	p, v := pv(r)
	st, err := s.d.VolumeInfo(ctx, p, v)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &storagev1.VolumeInfoResponse{State: stateToProto(st)}, nil
}

func (s *server) Verify(ctx context.Context, r *storagev1.VolumeRequest) (*storagev1.VerifyResponse, error) {
	p, v := pv(r)
	return &storagev1.VerifyResponse{}, ToStatus(s.d.Verify(ctx, p, v))
}

func (s *server) CloneFrom(ctx context.Context, r *storagev1.CloneFromRequest) (*storagev1.CloneFromResponse, error) {
	p, v := pv(r)
	return &storagev1.CloneFromResponse{}, ToStatus(s.d.CloneFrom(ctx, p, v, volumeFromProto(r.GetSource())))
}

func (s *server) ImportBegin(ctx context.Context, r *storagev1.ImportBeginRequest) (*storagev1.ImportBeginResponse, error) {
	p, v := pv(r)
	path, err := s.d.ImportBegin(ctx, p, v, r.GetSize())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &storagev1.ImportBeginResponse{Path: path}, nil
}

func (s *server) ImportEnd(ctx context.Context, r *storagev1.ImportEndRequest) (*storagev1.ImportEndResponse, error) {
	p, v := pv(r)
	return &storagev1.ImportEndResponse{}, ToStatus(s.d.ImportEnd(ctx, p, v, r.GetSuccess()))
}

func (s *server) ExportBegin(ctx context.Context, r *storagev1.VolumeRequest) (*storagev1.ExportBeginResponse, error) {
	p, v := pv(r)
	path, err := s.d.ExportBegin(ctx, p, v)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &storagev1.ExportBeginResponse{Path: path}, nil
}

func (s *server) ExportEnd(ctx context.Context, r *storagev1.ExportEndRequest) (*storagev1.ExportEndResponse, error) {
	p, v := pv(r)
	return &storagev1.ExportEndResponse{}, ToStatus(s.d.ExportEnd(ctx, p, v, r.GetPath()))
}
