package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/events"
)

// admin.Events over a real socket (spec admin-api §1.7).

const connectionEstablished = "1\x00\x00connection-established\x00\x00"

// frame is one decoded admin.Events frame.
type frame struct {
	Subject, Name string
	Kwargs        [][2]string
}

func (f frame) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s", f.Subject, f.Name)
	for _, kv := range f.Kwargs {
		fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
	}
	return b.String()
}

// eventStream is a client of admin.Events.
type eventStream struct {
	conn net.Conn
	r    *bufio.Reader
}

// openEvents connects, sends admin.Events for dest and checks the first
// frame byte for byte.
func openEvents(t testing.TB, path, dest string) *eventStream {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(hangGuard))
	if _, err := c.Write(wire("admin.Events", "", "dom0", dest, "")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len(connectionEstablished))
	if _, err := io.ReadFull(c, first); err != nil {
		t.Fatalf("reading the first frame: %v (got %q)", err, first)
	}
	if string(first) != connectionEstablished {
		t.Fatalf("first frame %q, want %q", first, connectionEstablished)
	}
	return &eventStream{conn: c, r: bufio.NewReader(c)}
}

func (es *eventStream) str() (string, error) {
	s, err := es.r.ReadString(0)
	if err != nil {
		return "", err
	}
	return s[:len(s)-1], nil
}

// next reads one frame.
func (es *eventStream) next() (frame, error) {
	var f frame
	code, err := es.str()
	if err != nil {
		return f, err
	}
	if code != "1" {
		rest, _ := io.ReadAll(es.r)
		return f, fmt.Errorf("not an event frame: code %q, then %q", code, rest)
	}
	if f.Subject, err = es.str(); err != nil {
		return f, err
	}
	if f.Name, err = es.str(); err != nil {
		return f, err
	}
	for {
		k, err := es.str()
		if err != nil {
			return f, err
		}
		if k == "" {
			return f, nil
		}
		v, err := es.str()
		if err != nil {
			return f, err
		}
		f.Kwargs = append(f.Kwargs, [2]string{k, v})
	}
}

// until reads frames up to and including the first for which stop is true.
func (es *eventStream) until(t testing.TB, stop func(frame) bool) []frame {
	t.Helper()
	var out []frame
	for {
		f, err := es.next()
		if err != nil {
			t.Fatalf("after %v: %v", out, err)
		}
		out = append(out, f)
		if stop(f) {
			return out
		}
	}
}

func named(subject, name string) func(frame) bool {
	return func(f frame) bool { return f.Subject == subject && f.Name == name }
}

func TestEventsFirstFrame(t *testing.T) {
	app, _ := newModel(t, 1)
	path := serve(t, New(Options{App: app}))
	for _, dest := range []string{"dom0", "vm0001", "sys-net"} {
		openEvents(t, path, dest) // checks the frame byte for byte
	}
	// keyword adminvm is dom0
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(hangGuard))
	_, _ = c.Write([]byte("admin.Events+ dom0 keyword adminvm\x00"))
	_ = c.(*net.UnixConn).CloseWrite()
	first := make([]byte, len(connectionEstablished))
	if _, err := io.ReadFull(c, first); err != nil || string(first) != connectionEstablished {
		t.Errorf("keyword adminvm: first frame %q, %v", first, err)
	}
}

// TestEventsRefusedStream: a stream request that fails validation gets one
// error reply and the connection ends.
func TestEventsRefusedStream(t *testing.T) {
	app, _ := newModel(t, 1)
	path := serve(t, New(Options{App: app}))
	for raw, want := range map[string]string{
		"admin.Events+ dom0 name nosuch\x00": "2\x00QubesVMNotFoundError\x00\x00No such domain: 'nosuch'\x00",
		"admin.Events+x dom0 name dom0\x00":  "2\x00ProtocolError\x00\x00unexpected argument\x00",
	} {
		if got := mustSockCall(t, path, []byte(raw)); string(got) != want {
			t.Errorf("%q: %q, want %q", raw, got, want)
		}
	}
}

func TestEventsPropertySet(t *testing.T) {
	app, _ := newModel(t, 2)
	path := serve(t, New(Options{App: app}))
	es := openEvents(t, path, "dom0")

	set := func(value string) []frame {
		t.Helper()
		if got := mustSockCall(t, path, wire("admin.vm.property.Set", "qrexec_timeout", "dom0", "vm0001", value)); string(got) != "0\x00" {
			t.Fatalf("Set: %q", got)
		}
		var props []frame
		for _, f := range es.until(t, named("vm0001", "property-set:qrexec_timeout")) {
			if strings.HasPrefix(f.Name, "property-") {
				props = append(props, f)
			}
		}
		return props
	}
	check := func(got []frame, kwargs [][2]string) {
		t.Helper()
		want := []frame{
			{Subject: "vm0001", Name: "property-pre-set:qrexec_timeout", Kwargs: kwargs},
			{Subject: "vm0001", Name: "property-set:qrexec_timeout", Kwargs: kwargs},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("frames\n got %v\nwant %v", got, want)
		}
	}
	// from the default (the template's, 60) to 77, then to 78
	check(set("77"), [][2]string{{"name", "qrexec_timeout"}, {"newvalue", "77"}, {"oldvalue", "60"}})
	check(set("78"), [][2]string{{"name", "qrexec_timeout"}, {"newvalue", "78"}, {"oldvalue", "77"}})

	// A reset: pre-reset, pre-del, reset, del, in that order.
	if got := mustSockCall(t, path, wire("admin.vm.property.Reset", "qrexec_timeout", "dom0", "vm0001", "")); string(got) != "0\x00" {
		t.Fatalf("Reset: %q", got)
	}
	var names []string
	for _, f := range es.until(t, named("vm0001", "property-del:qrexec_timeout")) {
		names = append(names, f.Name)
		if fmt.Sprint(f.Kwargs) != fmt.Sprint([][2]string{{"name", "qrexec_timeout"}, {"oldvalue", "78"}}) {
			t.Errorf("%s kwargs %v", f.Name, f.Kwargs)
		}
	}
	want := "property-pre-reset:qrexec_timeout property-pre-del:qrexec_timeout property-reset:qrexec_timeout property-del:qrexec_timeout"
	if strings.Join(names, " ") != want {
		t.Errorf("reset frames %v, want %s", names, want)
	}

	// A global property: the subject is empty.
	if got := mustSockCall(t, path, wire("admin.property.Set", "stats_interval", "dom0", "dom0", "5")); string(got) != "0\x00" {
		t.Fatalf("admin.property.Set: %q", got)
	}
	fs := es.until(t, named("", "property-set:stats_interval"))
	if got := fs[len(fs)-1].Kwargs; fmt.Sprint(got) != fmt.Sprint([][2]string{{"name", "stats_interval"}, {"newvalue", "5"}, {"oldvalue", "3"}}) {
		t.Errorf("global property-set kwargs %v", got)
	}
}

// TestEventsForOneQube: a stream for a qube sees that qube's events only —
// neither other qubes' nor the system's.
func TestEventsForOneQube(t *testing.T) {
	app, _ := newModel(t, 2)
	path := serve(t, New(Options{App: app}))
	one := openEvents(t, path, "vm0001")
	all := openEvents(t, path, "dom0")

	for _, raw := range [][]byte{
		wire("admin.property.Set", "stats_interval", "dom0", "dom0", "7"),
		wire("admin.vm.feature.Set", "other", "dom0", "vm0002", "1"),
		wire("admin.vm.feature.Set", "other", "dom0", "dom0", "1"),
		wire("admin.vm.tag.Set", "other", "dom0", "vm0002", ""),
		wire("admin.vm.property.Set", "qrexec_timeout", "dom0", "vm0002", "9"),
		wire("admin.vm.feature.Set", "marker", "dom0", "vm0001", "1"),
	} {
		if got := mustSockCall(t, path, raw); string(got) != "0\x00" {
			t.Fatalf("%q: %q", raw, got)
		}
	}
	got := one.until(t, named("vm0001", "domain-feature-set:marker"))
	want := []string{"vm0001/domain-feature-pre-set:marker feature=marker value=1", "vm0001/domain-feature-set:marker feature=marker value=1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the vm0001 stream got\n%v\nwant\n%v", got, want)
	}
	// The dom0 stream saw everything, in order.
	var seen []string
	for _, f := range all.until(t, named("vm0001", "domain-feature-set:marker")) {
		seen = append(seen, f.Subject+"/"+f.Name)
	}
	for _, w := range []string{"/property-set:stats_interval", "vm0002/domain-feature-set:other", "dom0/domain-feature-set:other",
		"vm0002/domain-tag-add:other", "vm0002/property-set:qrexec_timeout", "vm0001/domain-feature-set:marker"} {
		i := indexOf(seen, w)
		if i < 0 {
			t.Errorf("the dom0 stream did not see %s: %v", w, seen)
			continue
		}
		seen = seen[i+1:]
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// TestEventsNeverForwardAdminPermission: every call fires
// admin-permission:<method> on the bus; no stream ever sends it.
func TestEventsNeverForwardAdminPermission(t *testing.T) {
	app, _ := newModel(t, 2)
	path := serve(t, New(Options{App: app}))
	var fired atomic.Int64
	unsubscribe := app.Bus().Subscribe("admin-permission:*", events.Observer, func(*events.Event) error {
		fired.Add(1)
		return nil
	})
	defer unsubscribe()
	all := openEvents(t, path, "dom0")
	one := openEvents(t, path, "vm0001")

	for _, raw := range [][]byte{
		wire("admin.vm.List", "", "dom0", "dom0", ""),
		wire("admin.vm.List", "", "vm0001", "vm0001", ""),
		wire("admin.vm.property.Get", "label", "dom0", "vm0001", ""),
		wire("admin.vm.property.Set", "label", "vm0001", "vm0001", "blue"),
		wire("admin.vm.feature.Set", "preload-dispvm", "dom0", "vm0001", "1"), // refused by a permission rule
		wire("admin.vm.tag.Set", "t", "vm0001", "vm0001", ""),
		wire("admin.label.List", "", "vm0001", "dom0", ""),
		wire("admin.vm.feature.Set", "sentinel", "vm0001", "vm0001", ""),
	} {
		if got := mustSockCall(t, path, raw); checkReply(got) != nil {
			t.Fatalf("%q: %q", raw, got)
		}
	}
	if fired.Load() < 8 {
		t.Errorf("admin-permission fired %d times, want at least 8", fired.Load())
	}
	for name, es := range map[string]*eventStream{"dom0": all, "vm0001": one} {
		for _, f := range es.until(t, named("vm0001", "domain-feature-set:sentinel")) {
			for _, hidden := range []string{"admin-permission:", "device-get:", "device-list:", "domain-is-fully-usable"} {
				if strings.HasPrefix(f.Name, hidden) {
					t.Errorf("the %s stream forwarded %v", name, f)
				}
			}
		}
	}
}

// TestEventsForwardedFilter: the filter itself, including the events only
// extensions fire.
func TestEventsForwardedFilter(t *testing.T) {
	app, _ := newModel(t, 1)
	q := app.AdminVM()
	tests := []struct {
		subject any
		name    string
		want    bool
	}{
		{q, "admin-permission:admin.vm.List", false},
		{q, "device-get:pci", false},
		{q, "device-list:block", false},
		{q, "device-list-attached:usb", false},
		{q, "domain-is-fully-usable", false},
		{q, "domain-start", true},
		{q, "property-pre-set:netvm", true},
		{q, "admin-permissionless", true},
		{nil, "admin-permission:admin.vm.List", true}, // app events are not name-filtered
		{nil, "domain-add", true},
	}
	for _, tc := range tests {
		if got := forwarded(&events.Event{Subject: tc.subject, Name: tc.name}); got != tc.want {
			t.Errorf("forwarded(%v, %s) = %v, want %v", tc.subject, tc.name, got, tc.want)
		}
	}
}

// generate makes n feature changes on vm0001 through Call, each with a
// value of about 1 KiB, so that each produces two frames of about 1 KiB
// (pre-set and set).
func generate(t *testing.T, s *Server, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("%06d", i) + strings.Repeat("x", 1000)
		if got := s.Call(context.Background(), wire("admin.vm.feature.Set", "big", "dom0", "vm0001", v)); string(got) != "0\x00" {
			t.Fatalf("feature.Set %d: %q", i, got)
		}
	}
}

// TestEventsSlowSubscriberIsCutOff: a subscriber that stops reading is
// disconnected once its queue overflows, and the model goes on answering
// meanwhile.
func TestEventsSlowSubscriberIsCutOff(t *testing.T) {
	app, _ := newModel(t, 2)
	const queue = 16
	s := New(Options{App: app, EventQueue: queue})
	path := serve(t, s)
	slow := openEvents(t, path, "dom0")
	fast := openEvents(t, path, "vm0002") // sees none of vm0001's events

	// 4 MiB of frames: far more than the socket buffers and the queue hold.
	const changes = 2000
	for round := 0; round < 4; round++ {
		generate(t, s, changes/4)
		// other calls are served while the slow subscriber blocks
		if got := mustSockCall(t, path, wire("admin.vm.List", "", "dom0", "vm0002", "")); !bytes.HasPrefix(got, []byte("0\x00vm0002 ")) {
			t.Fatalf("admin.vm.List while a subscriber is stuck: %q", got)
		}
	}
	// The slow stream ends: reading it gives some frames, then EOF.
	n := 0
	for {
		f, err := slow.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d frames: %v (the slow subscriber was not cut off)", n, err)
		}
		if f.Name != "domain-feature-pre-set:big" && f.Name != "domain-feature-set:big" {
			t.Errorf("unexpected frame %v", f)
		}
		n++
	}
	if n >= 2*changes {
		t.Errorf("the slow subscriber got all %d frames; it should have been cut off", n)
	}
	t.Logf("the slow subscriber got %d of %d frames before it was cut off", n, 2*changes)

	// The other stream is still alive.
	if got := mustSockCall(t, path, wire("admin.vm.feature.Set", "alive", "dom0", "vm0002", "1")); string(got) != "0\x00" {
		t.Fatal(got)
	}
	fast.until(t, named("vm0002", "domain-feature-set:alive"))
}

// TestEventsShutdownEndsStreams: Shutdown ends every open stream and
// returns.
func TestEventsShutdownEndsStreams(t *testing.T) {
	app, _ := newModel(t, 1)
	s := New(Options{App: app})
	path := sockPath(t)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.Serve(l) }()
	streams := []*eventStream{openEvents(t, path, "dom0"), openEvents(t, path, "vm0001"), openEvents(t, path, "dom0")}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-serveErr; err != nil {
		t.Errorf("Serve: %v", err)
	}
	for i, es := range streams {
		rest, err := io.ReadAll(es.r)
		if err != nil {
			t.Errorf("stream %d: %v (not ended by Shutdown)", i, err)
		}
		if len(rest) != 0 {
			t.Errorf("stream %d: trailing bytes %q", i, rest)
		}
	}
}

// TestShutdownEndsBlockedStream: a subscriber that stopped reading while
// its socket is full must not hold Shutdown up.
func TestShutdownEndsBlockedStream(t *testing.T) {
	app, _ := newModel(t, 1)
	s := New(Options{App: app}) // default queue (4096) and ReadTimeout (60 s)
	path := sockPath(t)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.Serve(l) }()
	stuck := openEvents(t, path, "dom0")
	generate(t, s, 1500) // 3000 frames of 1 KiB: the socket is full, the queue is not

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = s.Shutdown(ctx)
	stuck.conn.Close() // unblocks the server's write
	if err2 := s.Shutdown(context.Background()); err2 != nil {
		t.Errorf("second Shutdown: %v", err2)
	}
	if err := <-serveErr; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if err != nil {
		t.Errorf("Shutdown does not end an event stream whose client stopped reading: %v "+
			"(events.go streamEvents is blocked in send → conn.Write, which only the write deadline of ReadTimeout, 60 s by default, "+
			"interrupts; Shutdown cancels s.ctx but does not close the connection)", err)
	}
}

func sockPath(t *testing.T) string { return t.TempDir() + "/qubesd.sock" }
