package extension

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hostv1 "github.com/qubesgo/qubesd/sdk/proto/host/v1"
)

// NewHostServer adapts the daemon's HostService to host.v1's Host gRPC
// service. Errors are sent as gRPC statuses with the exception as a
// detail (see ToStatus); a vetoed FireEvent travels in the response.
// Client.Configure serves it over the broker; call it directly only to
// serve a HostService on a gRPC server of your own.
func NewHostServer(h HostService) hostv1.HostServer {
	return &hostServer{h: h}
}

type hostServer struct {
	hostv1.UnimplementedHostServer
	h HostService
}

// dispatchReq is what every host.v1 request has.
type dispatchReq interface{ GetDispatchId() string }

func dispatch(r dispatchReq) (uint64, error) {
	id, err := parseDispatchID(r.GetDispatchId())
	if err != nil {
		return 0, status.Error(codes.InvalidArgument, err.Error())
	}
	return id, nil
}

func (s *hostServer) GetProperty(ctx context.Context, r *hostv1.GetPropertyRequest) (*hostv1.GetPropertyResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	p, err := s.h.GetProperty(ctx, id, r.GetSubject(), r.GetName())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &hostv1.GetPropertyResponse{Value: p.Value, IsDefault: p.IsDefault, Type: p.Type}, nil
}

func (s *hostServer) SetProperty(ctx context.Context, r *hostv1.SetPropertyRequest) (*hostv1.SetPropertyResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	return &hostv1.SetPropertyResponse{}, ToStatus(s.h.SetProperty(ctx, id, r.GetSubject(), r.GetName(), r.GetValue()))
}

func (s *hostServer) ResetProperty(ctx context.Context, r *hostv1.ResetPropertyRequest) (*hostv1.ResetPropertyResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	return &hostv1.ResetPropertyResponse{}, ToStatus(s.h.ResetProperty(ctx, id, r.GetSubject(), r.GetName()))
}

func (s *hostServer) GetFeature(ctx context.Context, r *hostv1.GetFeatureRequest) (*hostv1.GetFeatureResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	v, ok, err := s.h.GetFeature(ctx, id, r.GetSubject(), r.GetName())
	if err != nil {
		return nil, ToStatus(err)
	}
	if !ok {
		v = ""
	}
	return &hostv1.GetFeatureResponse{Present: ok, Value: v}, nil
}

func (s *hostServer) SetFeature(ctx context.Context, r *hostv1.SetFeatureRequest) (*hostv1.SetFeatureResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	return &hostv1.SetFeatureResponse{}, ToStatus(s.h.SetFeature(ctx, id, r.GetSubject(), r.GetName(), r.GetValue()))
}

func (s *hostServer) RemoveFeature(ctx context.Context, r *hostv1.RemoveFeatureRequest) (*hostv1.RemoveFeatureResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	return &hostv1.RemoveFeatureResponse{}, ToStatus(s.h.RemoveFeature(ctx, id, r.GetSubject(), r.GetName()))
}

func (s *hostServer) ListTags(ctx context.Context, r *hostv1.ListTagsRequest) (*hostv1.ListTagsResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	tags, err := s.h.ListTags(ctx, id, r.GetSubject())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &hostv1.ListTagsResponse{Tags: tags}, nil
}

func (s *hostServer) AddTag(ctx context.Context, r *hostv1.AddTagRequest) (*hostv1.AddTagResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	return &hostv1.AddTagResponse{}, ToStatus(s.h.AddTag(ctx, id, r.GetSubject(), r.GetTag()))
}

func (s *hostServer) RemoveTag(ctx context.Context, r *hostv1.RemoveTagRequest) (*hostv1.RemoveTagResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	return &hostv1.RemoveTagResponse{}, ToStatus(s.h.RemoveTag(ctx, id, r.GetSubject(), r.GetTag()))
}

func (s *hostServer) ListQubes(ctx context.Context, r *hostv1.ListQubesRequest) (*hostv1.ListQubesResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	qubes, err := s.h.ListQubes(ctx, id)
	if err != nil {
		return nil, ToStatus(err)
	}
	resp := &hostv1.ListQubesResponse{Qubes: make([]*hostv1.Qube, len(qubes))}
	for i, q := range qubes {
		resp.Qubes[i] = &hostv1.Qube{Name: q.Name, Class: q.Class, PowerState: q.PowerState}
	}
	return resp, nil
}

func (s *hostServer) QdbWrite(ctx context.Context, r *hostv1.QdbWriteRequest) (*hostv1.QdbWriteResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	return &hostv1.QdbWriteResponse{}, ToStatus(s.h.QdbWrite(ctx, id, r.GetQube(), r.GetPath(), r.GetValue()))
}

func (s *hostServer) QdbRemove(ctx context.Context, r *hostv1.QdbRemoveRequest) (*hostv1.QdbRemoveResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	return &hostv1.QdbRemoveResponse{}, ToStatus(s.h.QdbRemove(ctx, id, r.GetQube(), r.GetPath()))
}

func (s *hostServer) FireEvent(ctx context.Context, r *hostv1.FireEventRequest) (*hostv1.FireEventResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	results, err := s.h.FireEvent(ctx, id, r.GetSubject(), r.GetName(), kvsFromProto(r.GetKwargs()), r.GetPre())
	if err != nil {
		if errors.Is(err, ErrVeto) {
			return &hostv1.FireEventResponse{Veto: exceptionToProto(err)}, nil
		}
		return nil, ToStatus(err)
	}
	vals, err := valuesToProto(results)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "host: the results of %s cannot cross the protocol: %v", r.GetName(), err)
	}
	return &hostv1.FireEventResponse{Results: vals}, nil
}

func (s *hostServer) AttachDevice(ctx context.Context, r *hostv1.AttachDeviceRequest) (*hostv1.AttachDeviceResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	return &hostv1.AttachDeviceResponse{}, ToStatus(s.h.AttachDevice(ctx, id, r.GetQube(), r.GetXml()))
}

func (s *hostServer) DetachDevice(ctx context.Context, r *hostv1.DetachDeviceRequest) (*hostv1.DetachDeviceResponse, error) {
	id, err := dispatch(r)
	if err != nil {
		return nil, err
	}
	return &hostv1.DetachDeviceResponse{}, ToStatus(s.h.DetachDevice(ctx, id, r.GetQube(), r.GetXml()))
}
