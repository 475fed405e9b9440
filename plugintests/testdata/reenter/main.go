// Command reenter is an extension for tests of re-entrancy: when a feature
// is set on a qube it sets the feature "echo-<name>" on the same qube
// through the Host, which fires domain-feature-set:echo-<name> — an event
// this same extension handles (and stops at).
package main

import (
	"context"
	"strings"
	"sync"

	"github.com/qubesgo/qubesd/sdk/extension"
)

type reenter struct {
	extension.UnimplementedExtension
	mu   sync.Mutex
	host extension.Host
}

func (*reenter) Info(context.Context) (extension.Info, error) {
	return extension.Info{Name: "reenter", Version: "test"}, nil
}

func (r *reenter) Configure(_ context.Context, _ []byte, host extension.Host) error {
	r.mu.Lock()
	r.host = host
	r.mu.Unlock()
	return nil
}

func (*reenter) Subscriptions(context.Context) ([]extension.Subscription, error) {
	return []extension.Subscription{{Pattern: "domain-feature-set:*", Mode: extension.Sync}}, nil
}

func (r *reenter) HandleEvent(ctx context.Context, e extension.Event) ([]any, error) {
	name := e.Str("feature")
	if strings.HasPrefix(name, "echo-") {
		return []any{"echo seen"}, nil
	}
	r.mu.Lock()
	host := r.host
	r.mu.Unlock()
	// a callback made while handling the event: the dispatch id keeps it
	// from waiting for the lock held by the firer, which waits for us
	return nil, host.SetFeature(ctx, e.DispatchID, e.Subject, "echo-"+name, "1")
}

func main() { extension.Serve(&reenter{}) }
