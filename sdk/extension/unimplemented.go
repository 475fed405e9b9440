package extension

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
)

// UnimplementedExtension is embedded in an extension struct so that the
// extension keeps compiling when a later SDK version adds methods to
// Extension, and so that it need not write the methods it has nothing to
// do in.
//
// Info and HandleEvent return ErrUnimplemented; CallMethod too (it is
// never called for an extension that declares no method). Configure
// accepts an empty config, refuses any key, and drops the Host;
// Subscriptions and Methods declare nothing.
type UnimplementedExtension struct{}

func (UnimplementedExtension) Info(context.Context) (Info, error) {
	return Info{}, Errorf(ErrUnimplemented, "Info not implemented")
}

// Configure accepts an empty config and refuses any key: the extension has
// no settings.
func (UnimplementedExtension) Configure(_ context.Context, config []byte, _ Host) error {
	return DecodeConfig(config, &struct{}{})
}

func (UnimplementedExtension) Subscriptions(context.Context) ([]Subscription, error) {
	return nil, nil
}

func (UnimplementedExtension) HandleEvent(_ context.Context, e Event) ([]any, error) {
	return nil, Errorf(ErrUnimplemented, "HandleEvent not implemented (event %s)", e.Name)
}

func (UnimplementedExtension) Methods(context.Context) ([]MethodSpec, error) {
	return nil, nil
}

func (UnimplementedExtension) CallMethod(_ context.Context, c Call) ([]byte, error) {
	return nil, Errorf(ErrUnimplemented, "%s not implemented", c.Method)
}

var _ Extension = UnimplementedExtension{}

// DecodeConfig decodes the config Configure receives into v (a pointer to
// a struct with json tags), strictly: an unknown key or a value of the
// wrong type is an error of kind ErrInvalid that names it. An empty config
// leaves v as it is, so set the defaults before calling.
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
