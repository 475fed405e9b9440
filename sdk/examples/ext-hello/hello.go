package main

import (
	"context"
	"regexp"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/sdk/extension"
	"github.com/qubesgo/qubesd/sdk/plugin"
)

// Hello is the extension. Its state (the Host and the config) is set by
// Configure and read by handlers running concurrently, so it sits behind
// a mutex — never held across a Host call.
type Hello struct {
	extension.UnimplementedExtension

	mu   sync.Mutex
	host extension.Host
	tag  string
	log  hclog.Logger
}

// config is the plugin's config table.
type config struct {
	Tag string `json:"tag"`
}

// validTag is Qubes' rule for tag names.
var validTag = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (*Hello) Info(context.Context) (extension.Info, error) {
	return extension.Info{
		Name:        "hello",
		Version:     "0.1.0",
		Description: "tags qubes that get the feature 'hello'; refuses the feature 'forbidden'",
		Config:      []extension.ConfigKey{{Name: "tag", Description: "the tag to set", Default: "hello-seen"}},
	}, nil
}

func (h *Hello) Configure(ctx context.Context, raw []byte, host extension.Host) error {
	cfg := config{Tag: "hello-seen"}
	if err := extension.DecodeConfig(raw, &cfg); err != nil {
		return err
	}
	if !validTag.MatchString(cfg.Tag) {
		return extension.Errorf(extension.ErrInvalid, "plugin config: tag %q: only letters, digits, '_' and '-'", cfg.Tag)
	}
	// Outside a dispatch, Host calls take dispatch id 0.
	qubes, err := host.ListQubes(ctx, 0)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.host, h.tag = host, cfg.Tag
	if h.log == nil {
		h.log = plugin.Logger().Named("hello")
	}
	h.log.Info("configured", "tag", cfg.Tag, "qubes", len(qubes))
	return nil
}

// state returns what Configure set.
func (h *Hello) state() (extension.Host, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.host, h.tag
}

func (*Hello) Subscriptions(context.Context) ([]extension.Subscription, error) {
	return []extension.Subscription{
		{Pattern: "domain-feature-set:*", Mode: extension.Sync, Timeout: 5 * time.Second},
		{Pattern: "domain-feature-pre-set:forbidden", Mode: extension.PreVeto, Timeout: 5 * time.Second},
	}, nil
}

func (h *Hello) HandleEvent(ctx context.Context, e extension.Event) ([]any, error) {
	switch e.Name {
	case "domain-feature-pre-set:forbidden":
		return nil, extension.Vetof("the feature 'forbidden' may not be set on %s (refused by the hello extension)", e.Subject)
	case "domain-feature-set:hello":
		host, tag := h.state()
		// Inside a dispatch: pass its id, or the call waits for the
		// dispatch that waits for us.
		return nil, host.AddTag(ctx, e.DispatchID, e.Subject, tag)
	}
	return nil, nil // another feature: nothing to do
}

func (*Hello) Methods(context.Context) ([]extension.MethodSpec, error) {
	return []extension.MethodSpec{{
		Name:    "admin.vm.hello.Get",
		Dest:    extension.DestVM,
		Arg:     extension.Forbidden,
		Payload: extension.Forbidden,
		Scope:   extension.Local,
	}}, nil
}

func (*Hello) CallMethod(_ context.Context, c extension.Call) ([]byte, error) {
	// The SDK has checked the call against the MethodSpec: no argument,
	// no payload, a destination other than dom0.
	if c.Method == "admin.vm.hello.Get" {
		return []byte("hello " + c.Dest), nil
	}
	return nil, extension.Errorf(extension.ErrUnimplemented, "%s not implemented", c.Method)
}
