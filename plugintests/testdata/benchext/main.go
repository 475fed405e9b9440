// Command benchext is an extension for benchmarks: it answers Sync events
// "bench-sync" and "property-set:*" with "ok", handles Notify events
// "bench-notify" by doing nothing, and acknowledges each Notify event
// "bench-callback" by firing "bench-notify-ack" back through the Host.
package main

import (
	"context"
	"sync"

	"github.com/qubesgo/qubesd/sdk/extension"
)

type bench struct {
	extension.UnimplementedExtension
	mu   sync.Mutex
	host extension.Host
}

func (*bench) Info(context.Context) (extension.Info, error) {
	return extension.Info{Name: "benchext", Version: "test"}, nil
}

func (b *bench) Configure(_ context.Context, _ []byte, host extension.Host) error {
	b.mu.Lock()
	b.host = host
	b.mu.Unlock()
	return nil
}

func (*bench) Subscriptions(context.Context) ([]extension.Subscription, error) {
	return []extension.Subscription{
		{Pattern: "bench-sync", Mode: extension.Sync},
		{Pattern: "property-set:*", Mode: extension.Sync},
		{Pattern: "bench-notify", Mode: extension.Notify},
		{Pattern: "bench-callback", Mode: extension.Notify},
	}, nil
}

func (b *bench) HandleEvent(ctx context.Context, e extension.Event) ([]any, error) {
	if e.Name == "bench-callback" {
		b.mu.Lock()
		host := b.host
		b.mu.Unlock()
		_, err := host.FireEvent(ctx, 0, "", "bench-notify-ack", e.Kwargs, false)
		return nil, err
	}
	return []any{"ok"}, nil
}

func main() { extension.Serve(&bench{}) }
