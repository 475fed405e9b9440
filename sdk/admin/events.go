package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
)

// KV is one keyword argument of an event, in the order the daemon sent it.
type KV struct {
	Key, Value string
}

// Event is one frame of an admin.Events or admin.vm.Stats stream.
type Event struct {
	// Subject is the qube the event is about, or "" for events of the
	// application itself (domain-add, property-set:* of global properties,
	// connection-established, ...).
	Subject string
	// Name is the event name, e.g. "domain-start" or "property-set:netvm".
	Name string
	// Kwargs are the keyword arguments, as strings, in the order sent.
	Kwargs []KV
}

// ConnectionEstablished is the name of the first event of every stream.
const ConnectionEstablished = "connection-established"

// Arg returns the value of keyword argument key, or "" if the event has
// none; Lookup tells the two apart.
func (e Event) Arg(key string) string {
	v, _ := e.Lookup(key)
	return v
}

// Lookup returns the value of keyword argument key and whether it is
// present.
func (e Event) Lookup(key string) (string, bool) {
	for _, kv := range e.Kwargs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Events subscribes to admin.Events on dest (AdminVM for every event of the
// system, or a qube's name for that qube's events) and calls fn for each
// event, starting with the connection-established frame the daemon sends
// once the subscription is in place.
//
// Events returns when ctx is done (with ctx.Err()), when fn returns an error
// (with that error), or when the daemon ends the stream (nil). An exception
// frame — a refused subscription — is returned as *Error; a stream that ends
// before its first frame gives ErrEmptyReply.
func (c *Client) Events(ctx context.Context, dest string, fn func(Event) error) error {
	return c.stream(ctx, "admin.Events", dest, fn)
}

// Stats subscribes to admin.vm.Stats on dest and calls fn for each frame, as
// Events does: after connection-established, the daemon sends one vm-stats
// event per running qube every stats_interval seconds, with kwargs
// memory_kb, cpu_time, cpu_usage, online_vcpus and others.
func (c *Client) Stats(ctx context.Context, dest string, fn func(Event) error) error {
	return c.stream(ctx, "admin.vm.Stats", dest, fn)
}

func (c *Client) stream(ctx context.Context, method, dest string, fn func(Event) error) error {
	req, err := EncodeRequest(AdminVM, method, dest, "", nil)
	if err != nil {
		return err
	}
	conn, err := c.Send(ctx, req)
	if err != nil {
		return err
	}
	defer conn.Close()

	d := NewEventDecoder(conn)
	for first := true; ; first = false {
		ev, err := d.Next()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err == io.EOF && first:
			return fmt.Errorf("%s: %w", method, ErrEmptyReply)
		case err == io.EOF:
			return nil
		case err != nil:
			if isDaemonError(err) {
				return err
			}
			return fmt.Errorf("%s stream from qubesd at %s: %w", method, c.socket, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// EventDecoder reads the frames of an event stream:
//
//	"1\x00" subject NUL event NUL { key NUL value NUL } NUL
//
// and the single exception frame ("2\x00...") a refused subscription gets.
type EventDecoder struct {
	r *bufio.Reader
}

// NewEventDecoder returns a decoder reading from r.
func NewEventDecoder(r io.Reader) *EventDecoder {
	return &EventDecoder{r: bufio.NewReader(r)}
}

// Next returns the next event. At the end of the stream, between frames, it
// returns io.EOF; in the middle of a frame, io.ErrUnexpectedEOF. An
// exception frame is returned as *Error; anything else as an error wrapping
// ErrMalformedReply.
func (d *EventDecoder) Next() (Event, error) {
	code, err := d.r.ReadByte()
	if err != nil {
		return Event{}, err
	}
	if sep, err := d.r.ReadByte(); err != nil {
		return Event{}, unexpected(err)
	} else if sep != 0 {
		return Event{}, fmt.Errorf("%w: frame starts with %q", ErrMalformedReply, []byte{code, sep})
	}
	switch code {
	case '1':
		return d.event()
	case '2':
		var f [3]string
		for i := range f {
			if f[i], err = d.field(); err != nil {
				return Event{}, err
			}
		}
		e, _ := parseException([]byte(f[0] + "\x00" + f[1] + "\x00" + f[2] + "\x00"))
		return Event{}, e
	default:
		return Event{}, fmt.Errorf("%w: frame code %q on an event stream", ErrMalformedReply, code)
	}
}

func (d *EventDecoder) event() (Event, error) {
	var ev Event
	var err error
	if ev.Subject, err = d.field(); err != nil {
		return Event{}, err
	}
	if ev.Name, err = d.field(); err != nil {
		return Event{}, err
	}
	for {
		k, err := d.field()
		if err != nil {
			return Event{}, err
		}
		if k == "" {
			return ev, nil
		}
		v, err := d.field()
		if err != nil {
			return Event{}, err
		}
		ev.Kwargs = append(ev.Kwargs, KV{Key: k, Value: v})
	}
}

// field reads one NUL-terminated field.
func (d *EventDecoder) field() (string, error) {
	b, err := d.r.ReadBytes(0)
	if err != nil {
		return "", unexpected(err)
	}
	return string(b[:len(b)-1]), nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
