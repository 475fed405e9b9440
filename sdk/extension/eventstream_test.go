package extension_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"github.com/qubesgo/qubesd/sdk/extension"
	extensionv1 "github.com/qubesgo/qubesd/sdk/proto/extension/v1"
	"google.golang.org/grpc"
)

// TestEventStream: the behaviours of the one Events stream that carries
// every event to a plugin.
func TestEventStream(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"answers reach their callers out of order", func(t *testing.T) {
			// The first event waits until the second has been answered:
			// each caller still gets its own results.
			second := make(chan struct{})
			m := &mockExt{handle: func(_ context.Context, e extension.Event) ([]any, error) {
				if e.Str("n") == "1" {
					<-second
				} else {
					defer close(second)
				}
				return []any{e.Str("n")}, nil
			}}
			c, _ := setup(t, m)
			var wg sync.WaitGroup
			for _, n := range []string{"1", "2"} {
				wg.Go(func() {
					res, err := c.HandleEvent(t.Context(), extension.Event{Name: "e", Kwargs: []extension.KV{{"n", n}}, Mode: extension.Sync})
					if err != nil || len(res) != 1 || res[0] != n {
						t.Errorf("event %s: %v, %v", n, res, err)
					}
				})
				if n == "1" {
					time.Sleep(10 * time.Millisecond) // let "1" be sent first
				}
			}
			wg.Wait()
		}},
		{"notify events are handled in order", func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			m := &mockExt{handle: func(_ context.Context, e extension.Event) ([]any, error) {
				mu.Lock()
				seen = append(seen, e.Str("n"))
				mu.Unlock()
				return nil, nil
			}}
			c, _ := setup(t, m)
			var want []string
			for i := range 100 {
				n := fmt.Sprint(i)
				want = append(want, n)
				if _, err := c.HandleEvent(t.Context(), extension.Event{Name: "e", Kwargs: []extension.KV{{"n", n}}, Mode: extension.Notify}); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(seen, ",") != strings.Join(want, ",") {
				t.Errorf("handled %v", seen)
			}
		}},
		{"a hung handler fails the caller at its deadline, others go on", func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			m := &mockExt{handle: func(_ context.Context, e extension.Event) ([]any, error) {
				if e.Name == "hang" {
					<-release
				}
				return []any{"ok"}, nil
			}}
			c, _ := setup(t, m)
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			if _, err := c.HandleEvent(ctx, extension.Event{Name: "hang", Mode: extension.PreVeto}); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("hung handler: %v, want the deadline", err)
			}
			if res, err := c.HandleEvent(t.Context(), extension.Event{Name: "next", Mode: extension.Sync}); err != nil || len(res) != 1 {
				t.Errorf("the next event: %v, %v", res, err)
			}
		}},
		{"a panicking handler is answered with an error", func(t *testing.T) {
			m := &mockExt{handle: func(_ context.Context, e extension.Event) ([]any, error) {
				if e.Name == "domain-pre-start" {
					panic("boom")
				}
				return []any{"ok"}, nil
			}}
			c, _ := setup(t, m)
			_, err := c.HandleEvent(t.Context(), extension.Event{Name: "domain-pre-start", Mode: extension.PreVeto})
			if !errors.Is(err, extension.ErrVeto) || !strings.Contains(err.Error(), "panicked in event domain-pre-start: boom") {
				t.Errorf("panic: %v", err)
			}
			if res, err := c.HandleEvent(t.Context(), extension.Event{Name: "x", Mode: extension.PreVeto}); err != nil || len(res) != 1 {
				t.Errorf("the event after the panic: %v, %v", res, err)
			}
		}},
		{"closing fails the events in flight and refuses new ones", func(t *testing.T) {
			entered := make(chan struct{})
			release := make(chan struct{})
			defer close(release)
			m := &mockExt{handle: func(context.Context, extension.Event) ([]any, error) {
				close(entered)
				<-release
				return nil, nil
			}}
			c, _ := setup(t, m)
			errc := make(chan error, 1)
			go func() {
				_, err := c.HandleEvent(t.Context(), extension.Event{Name: "slow", Mode: extension.Sync})
				errc <- err
			}()
			<-entered
			c.Close()
			if err := <-errc; !errors.Is(err, extension.ErrUnavailable) {
				t.Errorf("event in flight: %v, want ErrUnavailable", err)
			}
			if _, err := c.HandleEvent(t.Context(), extension.Event{Name: "after"}); !errors.Is(err, extension.ErrUnavailable) {
				t.Errorf("event after Close: %v, want ErrUnavailable", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// deafServer accepts the Events stream and never reads it: a plugin that
// hangs.
type deafServer struct {
	extensionv1.UnimplementedExtensionServer
	release chan struct{}
}

func (d deafServer) Events(extensionv1.Extension_EventsServer) error {
	<-d.release
	return nil
}

// TestEventStreamPluginStopsReading: once the stream's flow-control window
// is full, a caller still gets its deadline instead of hanging in Send,
// and every later caller fails fast.
func TestEventStreamPluginStopsReading(t *testing.T) {
	release := make(chan struct{})
	conn, srv := goplugin.TestGRPCConn(t, func(s *grpc.Server) {
		extensionv1.RegisterExtensionServer(s, deafServer{release: release})
	})
	t.Cleanup(func() {
		close(release)
		conn.Close()
		srv.Stop()
	})
	c := extension.NewClient(extensionv1.NewExtensionClient(conn), nil, nil)
	big := strings.Repeat("x", 32<<10) // a few of these fill the window
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range 8 {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			_, err := c.HandleEvent(ctx, extension.Event{Name: "e", Kwargs: []extension.KV{{"big", big}}, Mode: extension.Sync})
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, extension.ErrUnavailable) {
				t.Errorf("event %d to a plugin that does not read: %v, want the deadline or ErrUnavailable", i, err)
				return
			}
		}
	}()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("HandleEvent ignored its deadline: stuck sending to a plugin that does not read")
	}
}
