package extension

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	extensionv1 "github.com/qubesgo/qubesd/sdk/proto/extension/v1"
)

// eventStream is the daemon's end of one Events stream. Callers send
// their requests themselves, one at a time; answers come back through a
// receiver goroutine that hands each to the caller waiting for its id.
type eventStream struct {
	stream extensionv1.Extension_EventsClient
	cancel context.CancelFunc
	// sending is held (a value in it) by the caller sending; a channel
	// rather than a mutex so that waiting for it honours the context.
	sending chan struct{}
	done    chan struct{} // closed when the stream broke or was closed

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan *extensionv1.EventResponse
	err     error // why the stream ended; set before done is closed
}

// openEventStream opens an Events stream on c and starts its goroutines.
func openEventStream(c extensionv1.ExtensionClient) (*eventStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.Events(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	st := &eventStream{
		stream:  stream,
		cancel:  cancel,
		sending: make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: make(map[uint64]chan *extensionv1.EventResponse),
	}
	go st.receive()
	return st, nil
}

// roundTrip sends req with a fresh id and waits for its response.
func (st *eventStream) roundTrip(ctx context.Context, req *extensionv1.EventRequest) (*extensionv1.EventResponse, error) {
	answer := make(chan *extensionv1.EventResponse, 1)
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return nil, st.err
	}
	st.next++
	req.Id = st.next
	st.pending[req.Id] = answer
	st.mu.Unlock()
	forget := func() {
		st.mu.Lock()
		delete(st.pending, req.Id)
		st.mu.Unlock()
	}

	if err := st.send(ctx, req); err != nil {
		forget()
		return nil, err
	}
	select {
	case r := <-answer:
		return r, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	case <-st.done:
		// The answer may have arrived just before the stream ended.
		select {
		case r := <-answer:
			return r, nil
		default:
			return nil, st.failure()
		}
	}
}

// send writes req to the stream. gRPC's Send blocks, regardless of ctx,
// when the plugin has stopped reading and the stream's flow-control window
// is full: if ctx ends meanwhile, the stream is ended (the plugin is hung;
// every event in flight fails, and the next event opens a new stream).
func (st *eventStream) send(ctx context.Context, req *extensionv1.EventRequest) error {
	select {
	case st.sending <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-st.done:
		return st.failure()
	}
	defer func() { <-st.sending }()
	stop := context.AfterFunc(ctx, func() {
		st.end(Errorf(ErrUnavailable, "the extension stopped reading its event stream (%v)", context.Cause(ctx)))
	})
	err := st.stream.Send(req)
	if !stop() {
		return ctx.Err()
	}
	if err != nil {
		// Send reports io.EOF for a stream the plugin ended; the real
		// status comes from Recv, which ends the stream.
		select {
		case <-st.done:
			return st.failure()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// receive hands each response to its caller, and ends the stream on the
// first error.
func (st *eventStream) receive() {
	for {
		r, err := st.stream.Recv()
		if errors.Is(err, io.EOF) {
			st.end(Errorf(ErrUnavailable, "the extension ended the event stream"))
			return
		}
		if err != nil {
			st.end(fmt.Errorf("event stream to the extension: %w", FromStatus(err)))
			return
		}
		st.mu.Lock()
		answer, ok := st.pending[r.GetId()]
		delete(st.pending, r.GetId())
		st.mu.Unlock()
		if ok {
			answer <- r // buffered, and each id is answered once
		}
	}
}

// end records why the stream ended and wakes every waiting caller.
func (st *eventStream) end(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return
	}
	st.err = err
	st.pending = nil
	st.cancel()
	close(st.done)
}

func (st *eventStream) failure() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// broken reports whether the stream has ended.
func (st *eventStream) broken() bool {
	select {
	case <-st.done:
		return true
	default:
		return false
	}
}

// close ends the stream from the daemon's side.
func (st *eventStream) close() {
	st.end(Errorf(ErrUnavailable, "event stream to the extension closed"))
}
