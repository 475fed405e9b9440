package api

import (
	"context"
	"strings"
	"sync"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
)

// admin.Events: a stream of event frames, starting with
// connection-established. Each subscriber has a bounded queue; one that
// cannot keep up is cut off, and the model never waits for it.

func addEventMethods(t methodTable) {
	t.add(&Method{Name: "admin.Events", Scope: Global, Stream: streamEvents})
}

// hiddenEvents are never forwarded for qubes: they are internal queries.
var hiddenEvents = []string{"admin-permission:", "device-get:", "device-list:", "device-list-attached:"}

func forwarded(e *events.Event) bool {
	if e.Subject == nil {
		return true
	}
	if e.Name == "domain-is-fully-usable" {
		return false
	}
	for _, p := range hiddenEvents {
		if strings.HasPrefix(e.Name, p) {
			return false
		}
	}
	return true
}

var errSlowSubscriber = qerr.New(qerr.Exception, "event stream cut off: the client did not read events fast enough")

func streamEvents(ctx context.Context, c *Call, send func([]byte) error) error {
	frames := make(chan []byte, c.Server.opts.EventQueue)
	var once sync.Once
	overflow := make(chan struct{})
	all := c.Dest.IsAdminVM()
	dest := c.Dest
	unsubscribe := c.App.Bus().Subscribe("*", events.Observer, func(e *events.Event) error {
		if !forwarded(e) {
			return nil
		}
		if !all {
			if q, ok := e.Subject.(*qubes.Qube); !ok || q != dest {
				return nil
			}
		}
		select {
		case frames <- EventFrame(e):
		default:
			once.Do(func() { close(overflow) })
		}
		return nil
	})
	defer unsubscribe()
	if err := send([]byte("1\x00\x00connection-established\x00\x00")); err != nil {
		return err
	}
	for {
		select {
		case f := <-frames:
			if err := send(f); err != nil {
				return err
			}
		case <-overflow:
			c.Server.log.Warn("admin.Events subscriber too slow; disconnecting it", "queue", c.Server.opts.EventQueue)
			return errSlowSubscriber
		case <-ctx.Done():
			return nil
		}
	}
}
