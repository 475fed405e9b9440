package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// recordedEvent is one line of public-n10-mutate-events.jsonl.
type recordedEvent struct {
	Subject string      `json:"subject"`
	Event   string      `json:"event"`
	Kwargs  [][2]string `json:"kwargs"`
	RawB64  string      `json:"raw_b64"`
}

func loadEvents(t *testing.T) ([]recordedEvent, []byte) {
	t.Helper()
	f, err := os.Open(fixturePath(t, "public-n10-mutate-events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []recordedEvent
	var stream []byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e recordedEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(e.RawB64)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
		stream = append(stream, raw...)
	}
	return evs, stream
}

// TestEventsRecorded replays the reference daemon's event stream and checks
// every frame is parsed as recorded.
func TestEventsRecorded(t *testing.T) {
	want, stream := loadEvents(t)
	var req []byte
	s := newFakeServer(t, func(conn *net.UnixConn) {
		req, _ = readRequest(conn)
		// Write in odd-sized pieces to exercise frame reassembly.
		for len(stream) > 0 {
			n := min(len(stream), 37)
			if _, err := conn.Write(stream[:n]); err != nil {
				return
			}
			stream = stream[n:]
		}
	})
	var got []Event
	err := New(s.path).Events(context.Background(), "dom0", func(e Event) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	if string(req) != "admin.Events+ dom0 name dom0\x00" {
		t.Errorf("request %q", req)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	if got[0].Name != ConnectionEstablished || got[0].Subject != "" || len(got[0].Kwargs) != 0 {
		t.Errorf("first event %+v", got[0])
	}
	for i, w := range want {
		var kw []KV
		for _, p := range w.Kwargs {
			kw = append(kw, KV{p[0], p[1]})
		}
		e := Event{Subject: w.Subject, Name: w.Event, Kwargs: kw}
		if !reflect.DeepEqual(got[i], e) {
			t.Errorf("event %d: got %+v, want %+v", i, got[i], e)
		}
	}
	// A property-set event with its kwargs.
	for _, e := range got {
		if e.Name == "property-pre-set:label" && e.Subject == "vm0001" {
			if e.Arg("newvalue") != "blue" || e.Arg("oldvalue") != "orange" || e.Arg("nothing") != "" {
				t.Errorf("kwargs of %+v", e)
			}
			if _, ok := e.Lookup("nothing"); ok {
				t.Error("Lookup of a missing kwarg says present")
			}
			return
		}
	}
	t.Error("no property-pre-set:label event of vm0001")
}

func TestEventsCallbackError(t *testing.T) {
	_, stream := loadEvents(t)
	s := newFakeServer(t, func(conn *net.UnixConn) {
		readRequest(conn)
		conn.Write(stream)
	})
	stop := errors.New("enough")
	n := 0
	err := New(s.path).Events(context.Background(), "vm0001", func(Event) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Errorf("Events = %v after %d events", err, n)
	}
}

func TestEventsCancel(t *testing.T) {
	block := make(chan struct{})
	s := newFakeServer(t, func(conn *net.UnixConn) {
		readRequest(conn)
		conn.Write([]byte("1\x00\x00connection-established\x00\x00"))
		<-block // a quiet stream
	})
	t.Cleanup(func() { close(block) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- New(s.path).Events(ctx, "dom0", func(e Event) error {
			if e.Name == ConnectionEstablished {
				cancel()
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Events = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Events did not return after cancel")
	}
}

func TestEventsEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream string
		check  func(error) bool
	}{
		{"refused", "2\x00PermissionDenied\x00\x00denied\x00", func(err error) bool {
			return IsType(err, TypePermissionDenied) && err.Error() == "denied"
		}},
		{"empty", "", func(err error) bool { return errors.Is(err, ErrEmptyReply) }},
		{"closed", "1\x00\x00connection-established\x00\x00", func(err error) bool { return err == nil }},
		{"truncated", "1\x00\x00connection-established\x00\x001\x00vm1\x00domain-start\x00start_guid", func(err error) bool {
			return errors.Is(err, io.ErrUnexpectedEOF)
		}},
		{"garbage", "1\x00\x00connection-established\x00\x00x\x00", func(err error) bool {
			return errors.Is(err, ErrMalformedReply)
		}},
		{"bad-separator", "1x", func(err error) bool { return errors.Is(err, ErrMalformedReply) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t, replyWith(func([]byte) []byte { return []byte(tc.stream) }))
			var n int
			err := New(s.path).Events(context.Background(), "dom0", func(Event) error { n++; return nil })
			if !tc.check(err) {
				t.Errorf("Events = %v (after %d events)", err, n)
			}
		})
	}
}

func TestEventDecoder(t *testing.T) {
	in := "1\x00work\x00domain-start\x00start_guid\x00True\x00\x00" +
		"1\x00\x00domain-add\x00vm\x00new\x00\x00" +
		"1\x00vm1\x00vm-stats\x00memory_kb\x00400\x00cpu_usage\x005\x00\x00"
	d := NewEventDecoder(strings.NewReader(in))
	want := []Event{
		{Subject: "work", Name: "domain-start", Kwargs: []KV{{"start_guid", "True"}}},
		{Subject: "", Name: "domain-add", Kwargs: []KV{{"vm", "new"}}},
		{Subject: "vm1", Name: "vm-stats", Kwargs: []KV{{"memory_kb", "400"}, {"cpu_usage", "5"}}},
	}
	for i, w := range want {
		e, err := d.Next()
		if err != nil || !reflect.DeepEqual(e, w) {
			t.Errorf("event %d = %+v, %v; want %+v", i, e, err, w)
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Errorf("at end: %v, want io.EOF", err)
	}
	// The spec's sample from the server tests.
	e, err := NewEventDecoder(bytes.NewReader([]byte("1\x00subject\x00event\x00payload\x00payload\x00\x00"))).Next()
	if err != nil || e.Subject != "subject" || e.Name != "event" || e.Arg("payload") != "payload" {
		t.Errorf("got %+v, %v", e, err)
	}
}

func TestStatsRequest(t *testing.T) {
	var req []byte
	s := newFakeServer(t, func(conn *net.UnixConn) {
		req, _ = readRequest(conn)
		conn.Write([]byte("1\x00\x00connection-established\x00\x00" +
			"1\x00vm1\x00vm-stats\x00memory_kb\x00409600\x00cpu_time\x0010\x00cpu_usage\x003\x00online_vcpus\x002\x00\x00"))
	})
	var got []Event
	if err := New(s.path).Stats(context.Background(), "dom0", func(e Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if string(req) != "admin.vm.Stats+ dom0 name dom0\x00" {
		t.Errorf("request %q", req)
	}
	if len(got) != 2 || got[1].Arg("memory_kb") != "409600" || got[1].Subject != "vm1" {
		t.Errorf("events %+v", got)
	}
}
