package extension

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hostv1 "github.com/qubesgo/qubesd/sdk/proto/host/v1"
)

// NewHostClient returns a Host that calls the daemon through a host.v1
// client: the Host an extension gets in Configure. Errors come back as
// *Error values of the kind and exception class the daemon sent (see
// FromStatus). With a nil client every call fails with ErrUnavailable
// (the daemon offered no host service).
func NewHostClient(c hostv1.HostClient) Host {
	return &hostClient{c: c}
}

type hostClient struct {
	c hostv1.HostClient
}

var _ Host = (*hostClient)(nil)

// hostErr converts a host call's error (see FromStatus). A call cancelled
// while its ctx is not is a call on a connection the SDK closed, because
// Configure was called again: ErrUnavailable, saying so.
func hostErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if status.Code(err) == codes.Canceled && ctx.Err() == nil {
		return Errorf(ErrUnavailable, "host: %s (this Host is closed: use the one the last Configure gave)", status.Convert(err).Message())
	}
	return FromStatus(err)
}

// check reports why no call can be made, if so.
func (h *hostClient) check() error {
	if h.c == nil {
		return Errorf(ErrUnavailable, "host: the daemon offered no host service")
	}
	return nil
}

func (h *hostClient) GetProperty(ctx context.Context, id uint64, subject, name string) (Property, error) {
	if err := h.check(); err != nil {
		return Property{}, err
	}
	r, err := h.c.GetProperty(ctx, &hostv1.GetPropertyRequest{DispatchId: formatDispatchID(id), Subject: subject, Name: name})
	if err != nil {
		return Property{}, hostErr(ctx, err)
	}
	return Property{Value: r.GetValue(), IsDefault: r.GetIsDefault(), Type: r.GetType()}, nil
}

func (h *hostClient) SetProperty(ctx context.Context, id uint64, subject, name, value string) error {
	if err := h.check(); err != nil {
		return err
	}
	_, err := h.c.SetProperty(ctx, &hostv1.SetPropertyRequest{DispatchId: formatDispatchID(id), Subject: subject, Name: name, Value: value})
	return hostErr(ctx, err)
}

func (h *hostClient) ResetProperty(ctx context.Context, id uint64, subject, name string) error {
	if err := h.check(); err != nil {
		return err
	}
	_, err := h.c.ResetProperty(ctx, &hostv1.ResetPropertyRequest{DispatchId: formatDispatchID(id), Subject: subject, Name: name})
	return hostErr(ctx, err)
}

func (h *hostClient) GetFeature(ctx context.Context, id uint64, subject, name string) (string, bool, error) {
	if err := h.check(); err != nil {
		return "", false, err
	}
	r, err := h.c.GetFeature(ctx, &hostv1.GetFeatureRequest{DispatchId: formatDispatchID(id), Subject: subject, Name: name})
	if err != nil {
		return "", false, hostErr(ctx, err)
	}
	return r.GetValue(), r.GetPresent(), nil
}

func (h *hostClient) SetFeature(ctx context.Context, id uint64, subject, name, value string) error {
	if err := h.check(); err != nil {
		return err
	}
	_, err := h.c.SetFeature(ctx, &hostv1.SetFeatureRequest{DispatchId: formatDispatchID(id), Subject: subject, Name: name, Value: value})
	return hostErr(ctx, err)
}

func (h *hostClient) RemoveFeature(ctx context.Context, id uint64, subject, name string) error {
	if err := h.check(); err != nil {
		return err
	}
	_, err := h.c.RemoveFeature(ctx, &hostv1.RemoveFeatureRequest{DispatchId: formatDispatchID(id), Subject: subject, Name: name})
	return hostErr(ctx, err)
}

func (h *hostClient) ListTags(ctx context.Context, id uint64, subject string) ([]string, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	r, err := h.c.ListTags(ctx, &hostv1.ListTagsRequest{DispatchId: formatDispatchID(id), Subject: subject})
	if err != nil {
		return nil, hostErr(ctx, err)
	}
	return r.GetTags(), nil
}

func (h *hostClient) AddTag(ctx context.Context, id uint64, subject, tag string) error {
	if err := h.check(); err != nil {
		return err
	}
	_, err := h.c.AddTag(ctx, &hostv1.AddTagRequest{DispatchId: formatDispatchID(id), Subject: subject, Tag: tag})
	return hostErr(ctx, err)
}

func (h *hostClient) RemoveTag(ctx context.Context, id uint64, subject, tag string) error {
	if err := h.check(); err != nil {
		return err
	}
	_, err := h.c.RemoveTag(ctx, &hostv1.RemoveTagRequest{DispatchId: formatDispatchID(id), Subject: subject, Tag: tag})
	return hostErr(ctx, err)
}

func (h *hostClient) ListQubes(ctx context.Context, id uint64) ([]QubeInfo, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	r, err := h.c.ListQubes(ctx, &hostv1.ListQubesRequest{DispatchId: formatDispatchID(id)})
	if err != nil {
		return nil, hostErr(ctx, err)
	}
	qubes := make([]QubeInfo, len(r.GetQubes()))
	for i, q := range r.GetQubes() {
		qubes[i] = QubeInfo{Name: q.GetName(), Class: q.GetClass(), PowerState: q.GetPowerState()}
	}
	return qubes, nil
}

func (h *hostClient) QdbWrite(ctx context.Context, id uint64, qube, path string, value []byte) error {
	if err := h.check(); err != nil {
		return err
	}
	_, err := h.c.QdbWrite(ctx, &hostv1.QdbWriteRequest{DispatchId: formatDispatchID(id), Qube: qube, Path: path, Value: value})
	return hostErr(ctx, err)
}

func (h *hostClient) QdbRemove(ctx context.Context, id uint64, qube, path string) error {
	if err := h.check(); err != nil {
		return err
	}
	_, err := h.c.QdbRemove(ctx, &hostv1.QdbRemoveRequest{DispatchId: formatDispatchID(id), Qube: qube, Path: path})
	return hostErr(ctx, err)
}

func (h *hostClient) FireEvent(ctx context.Context, id uint64, subject, name string, kwargs []KV, pre bool) ([]any, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	kvs, err := kvsToProto(kwargs)
	if err != nil {
		return nil, Errorf(ErrInvalid, "firing %s: kwarg %v", name, err)
	}
	r, err := h.c.FireEvent(ctx, &hostv1.FireEventRequest{DispatchId: formatDispatchID(id), Subject: subject, Name: name, Kwargs: kvs, Pre: pre})
	if err != nil {
		return nil, hostErr(ctx, err)
	}
	if r.GetVeto() != nil {
		return nil, exceptionFromProto(r.GetVeto(), ErrVeto)
	}
	return valuesFromProto(r.GetResults()), nil
}

func (h *hostClient) AttachDevice(ctx context.Context, id uint64, qube, xml string) error {
	if err := h.check(); err != nil {
		return err
	}
	_, err := h.c.AttachDevice(ctx, &hostv1.AttachDeviceRequest{DispatchId: formatDispatchID(id), Qube: qube, Xml: xml})
	return hostErr(ctx, err)
}

func (h *hostClient) DetachDevice(ctx context.Context, id uint64, qube, xml string) error {
	if err := h.check(); err != nil {
		return err
	}
	_, err := h.c.DetachDevice(ctx, &hostv1.DetachDeviceRequest{DispatchId: formatDispatchID(id), Qube: qube, Xml: xml})
	return hostErr(ctx, err)
}
