package api

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
)

// The wire protocol (spec admin-api §1.2, §1.4): request framing and the
// three kinds of reply, without a server.

func TestParseRequestFraming(t *testing.T) {
	// sized returns a request of exactly n bytes: a valid header, then
	// payload filler.
	sized := func(n int) []byte {
		head := []byte("admin.vm.feature.Set+x dom0 name dom0\x00")
		return append(head, bytes.Repeat([]byte{'v'}, n-len(head))...)
	}
	tests := []struct {
		name    string
		raw     []byte
		want    *Request // nil: refused
		wantErr string   // substring of the refusal
	}{
		{
			name: "plain request",
			raw:  []byte("admin.vm.List+ dom0 name dom0\x00"),
			want: &Request{Method: "admin.vm.List", Src: "dom0", DestType: "name", Dest: "dom0", Payload: []byte{}},
		},
		{
			name:    "no NUL",
			raw:     []byte("admin.vm.List+ dom0 name dom0"),
			wantErr: "framing error: the request has no NUL byte after its header",
		},
		{
			name:    "empty request",
			raw:     nil,
			wantErr: "no NUL byte",
		},
		{
			name:    "only a NUL",
			raw:     []byte("\x00"),
			wantErr: "got 1 fields",
		},
		{
			name:    "three header fields",
			raw:     []byte("admin.vm.List+ dom0 name\x00"),
			wantErr: "framing error: the header must be 'method+arg src dest_type dest', got 3 fields",
		},
		{
			name:    "two header fields",
			raw:     []byte("admin.vm.List+ dom0\x00payload with spaces after the NUL"),
			wantErr: "got 2 fields",
		},
		{
			name: "keyword adminvm is rewritten to name dom0",
			raw:  []byte("admin.vm.List+ work keyword adminvm\x00"),
			want: &Request{Method: "admin.vm.List", Src: "work", DestType: "name", Dest: "dom0", Payload: []byte{}},
		},
		{
			name:    "other keyword refused",
			raw:     []byte("admin.vm.List+ work keyword dom0\x00"),
			wantErr: "framing error: destination type 'keyword' is not supported",
		},
		{
			name:    "keyword with empty dest refused",
			raw:     []byte("admin.vm.List+ work keyword \x00"),
			wantErr: "destination type 'keyword' is not supported",
		},
		{
			name:    "uuid dest type refused",
			raw:     []byte("admin.vm.List+ dom0 uuid 00000000-0000-0000-0000-000000000000\x00"),
			wantErr: "destination type 'uuid' is not supported",
		},
		{
			name:    "empty dest type refused",
			raw:     []byte("admin.vm.List+ dom0  dom0\x00"),
			wantErr: "destination type '' is not supported",
		},
		{
			name:    "dest type is case-sensitive",
			raw:     []byte("admin.vm.List+ dom0 Name dom0\x00"),
			wantErr: "destination type 'Name' is not supported",
		},
		{
			name: "method without '+' has an empty argument",
			raw:  []byte("admin.vm.List dom0 name dom0\x00"),
			want: &Request{Method: "admin.vm.List", Src: "dom0", DestType: "name", Dest: "dom0", Payload: []byte{}},
		},
		{
			name: "argument split at the first '+'",
			raw:  []byte("admin.vm.Shutdown+force+wait dom0 name work\x00"),
			want: &Request{Method: "admin.vm.Shutdown", Arg: "force+wait", Src: "dom0", DestType: "name", Dest: "work", Payload: []byte{}},
		},
		{
			name: "argument that is only '+'",
			raw:  []byte("m++ dom0 name work\x00"),
			want: &Request{Method: "m", Arg: "+", Src: "dom0", DestType: "name", Dest: "work", Payload: []byte{}},
		},
		{
			name: "dest keeps the spaces after the fourth field",
			raw:  []byte("m+a dom0 name work extra words\x00"),
			want: &Request{Method: "m", Arg: "a", Src: "dom0", DestType: "name", Dest: "work extra words", Payload: []byte{}},
		},
		{
			name: "empty fields are kept as empty strings",
			raw:  []byte("+  name \x00"),
			want: &Request{DestType: "name", Payload: []byte{}},
		},
		{
			name: "payload after the first NUL, NULs and all",
			raw:  []byte("admin.vm.feature.Set+f dom0 name work\x00a\x00b\x00\x00"),
			want: &Request{Method: "admin.vm.feature.Set", Arg: "f", Src: "dom0", DestType: "name", Dest: "work", Payload: []byte("a\x00b\x00\x00")},
		},
		{
			name: "payload that is only NULs",
			raw:  []byte("m+ dom0 name work\x00\x00\x00"),
			want: &Request{Method: "m", Src: "dom0", DestType: "name", Dest: "work", Payload: []byte("\x00\x00")},
		},
		{
			name: "exactly MaxRequest bytes accepted",
			raw:  sized(MaxRequest),
			want: &Request{Method: "admin.vm.feature.Set", Arg: "x", Src: "dom0", DestType: "name", Dest: "dom0",
				Payload: bytes.Repeat([]byte{'v'}, MaxRequest-len("admin.vm.feature.Set+x dom0 name dom0\x00"))},
		},
		{
			name:    "MaxRequest+1 bytes refused",
			raw:     sized(MaxRequest + 1),
			wantErr: fmt.Sprintf("request too long: %d bytes, the limit is %d", MaxRequest+1, MaxRequest),
		},
		{
			name:    "a huge request without NUL is refused for its size first",
			raw:     bytes.Repeat([]byte{'a'}, 3*MaxRequest),
			wantErr: "request too long",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRequest(tc.raw)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("ParseRequest accepted %q: %+v", trunc(tc.raw), r)
				}
				if k := qerr.KindOf(err); k != qerr.ProtocolError {
					t.Errorf("kind %s, want ProtocolError", k)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest(%q): %v", trunc(tc.raw), err)
			}
			if r.Method != tc.want.Method || r.Arg != tc.want.Arg || r.Src != tc.want.Src ||
				r.DestType != tc.want.DestType || r.Dest != tc.want.Dest || !bytes.Equal(r.Payload, tc.want.Payload) {
				t.Errorf("ParseRequest(%q)\n got %+v\nwant %+v", trunc(tc.raw), r, tc.want)
			}
		})
	}
}

func trunc(b []byte) []byte {
	if len(b) > 80 {
		return append(append([]byte(nil), b[:80]...), "..."...)
	}
	return b
}

func TestRequestEncodeRoundTrip(t *testing.T) {
	tests := []struct {
		in   Request
		wire string
		out  Request // after ParseRequest(in.Encode())
	}{
		{
			in:   Request{Method: "admin.vm.List", Src: "dom0", Dest: "dom0"},
			wire: "admin.vm.List+ dom0 name dom0\x00",
			out:  Request{Method: "admin.vm.List", Src: "dom0", DestType: "name", Dest: "dom0"},
		},
		{
			in:   Request{Method: "admin.vm.property.Set", Arg: "netvm", Src: "dom0", DestType: "name", Dest: "work", Payload: []byte("sys-firewall")},
			wire: "admin.vm.property.Set+netvm dom0 name work\x00sys-firewall",
			out:  Request{Method: "admin.vm.property.Set", Arg: "netvm", Src: "dom0", DestType: "name", Dest: "work", Payload: []byte("sys-firewall")},
		},
		{
			in:   Request{Method: "admin.vm.Shutdown", Arg: "force+wait", Src: "work", Dest: "uuid:00000000-0000-0000-0000-000000000001"},
			wire: "admin.vm.Shutdown+force+wait work name uuid:00000000-0000-0000-0000-000000000001\x00",
			out:  Request{Method: "admin.vm.Shutdown", Arg: "force+wait", Src: "work", DestType: "name", Dest: "uuid:00000000-0000-0000-0000-000000000001"},
		},
		{
			in:   Request{Method: "admin.vm.List", Src: "work", DestType: "keyword", Dest: "adminvm"},
			wire: "admin.vm.List+ work keyword adminvm\x00",
			out:  Request{Method: "admin.vm.List", Src: "work", DestType: "name", Dest: "dom0"},
		},
		{
			in:   Request{Method: "admin.vm.notes.Set", Src: "dom0", Dest: "work", Payload: []byte("a\x00b\nc\x00")},
			wire: "admin.vm.notes.Set+ dom0 name work\x00a\x00b\nc\x00",
			out:  Request{Method: "admin.vm.notes.Set", Src: "dom0", DestType: "name", Dest: "work", Payload: []byte("a\x00b\nc\x00")},
		},
	}
	for _, tc := range tests {
		wire := tc.in.Encode()
		if string(wire) != tc.wire {
			t.Errorf("Encode(%+v) = %q, want %q", tc.in, wire, tc.wire)
		}
		got, err := ParseRequest(wire)
		if err != nil {
			t.Errorf("ParseRequest(Encode(%+v)): %v", tc.in, err)
			continue
		}
		if got.Method != tc.out.Method || got.Arg != tc.out.Arg || got.Src != tc.out.Src ||
			got.DestType != tc.out.DestType || got.Dest != tc.out.Dest || !bytes.Equal(got.Payload, tc.out.Payload) {
			t.Errorf("round trip of %+v\n got %+v\nwant %+v", tc.in, got, tc.out)
		}
		// Encoding the parsed request again gives a fixed point.
		if again := got.Encode(); !bytes.Equal(again, got.Encode()) || !bytes.Equal(mustParse(t, again).Encode(), again) {
			t.Errorf("Encode is not stable for %+v", got)
		}
	}
}

func mustParse(t *testing.T, raw []byte) *Request {
	t.Helper()
	r, err := ParseRequest(raw)
	if err != nil {
		t.Fatalf("ParseRequest(%q): %v", raw, err)
	}
	return r
}

func TestOKReply(t *testing.T) {
	tests := []struct {
		body []byte
		want string
	}{
		{nil, "0\x00"},
		{[]byte{}, "0\x00"},
		{[]byte("dom0 class=AdminVM state=Running\n"), "0\x00dom0 class=AdminVM state=Running\n"},
		{[]byte("a\x00b"), "0\x00a\x00b"}, // no trailing NUL, body verbatim
	}
	for _, tc := range tests {
		if got := string(OKReply(tc.body)); got != tc.want {
			t.Errorf("OKReply(%q) = %q, want %q", tc.body, got, tc.want)
		}
	}
	// The reply does not alias the body.
	body := []byte("xyz")
	r := OKReply(body)
	body[0] = 'Q'
	if string(r) != "0\x00xyz" {
		t.Errorf("OKReply aliases its body: %q", r)
	}
}

func TestErrorReply(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"kind and message", qerr.New(qerr.VMNotFound, "No such domain: 'work'"),
			"2\x00QubesVMNotFoundError\x00\x00No such domain: 'work'\x00"},
		{"protocol error", qerr.New(qerr.ProtocolError, "unexpected payload"),
			"2\x00ProtocolError\x00\x00unexpected payload\x00"},
		{"plain error is a QubesException", errors.New("qubes-exception"),
			"2\x00QubesException\x00\x00qubes-exception\x00"},
		{"wrapped kind is found in the chain", fmt.Errorf("saving: %w", qerr.New(qerr.PermissionDenied, "no")),
			"2\x00PermissionDenied\x00\x00saving: no\x00"},
		{"qerr.Wrap keeps the kind, hides the cause", qerr.Wrap(qerr.Exception, errors.New("EIO secret path"), "Failed to write notes file"),
			"2\x00QubesException\x00\x00Failed to write notes file\x00"},
		{"message with percent sign is sent as is", qerr.New(qerr.ValueError, "%s", "100% broken"),
			"2\x00QubesValueError\x00\x00100% broken\x00"},
		{"empty message", qerr.New(qerr.Exception, ""),
			"2\x00QubesException\x00\x00\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(ErrorReply(tc.err)); got != tc.want {
				t.Errorf("ErrorReply = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestErrorReplyEmptyKind: an *qerr.Error whose Kind is empty has no kind
// the client can look up; it should be sent as a QubesException like any
// error without a kind.
func TestErrorReplyEmptyKind(t *testing.T) {
	got := string(ErrorReply(&qerr.Error{Msg: "no kind"}))
	want := "2\x00QubesException\x00\x00no kind\x00"
	if got != want {
		t.Errorf("ErrorReply(&qerr.Error{Kind: \"\"}) = %q, want %q (protocol.go ErrorReply copies qerr.KindOf verbatim, so an empty Kind gives an empty exception name)", got, want)
	}
}

type stringer string

func (s stringer) String() string { return "S(" + string(s) + ")" }

func TestEventFrame(t *testing.T) {
	app := qubes.NewSystem(qubes.Options{DataDir: t.TempDir(), HostMemoryMiB: 8192, HostCPUs: 2})
	dom0 := app.AdminVM()
	var nilQube *qubes.Qube
	tests := []struct {
		name string
		ev   events.Event
		want string
	}{
		{"app subject is empty, no kwargs",
			events.Event{Name: "connection-established"},
			"1\x00\x00connection-established\x00\x00"},
		{"qube subject renders its name",
			events.Event{Subject: dom0, Name: "domain-start", Kwargs: []events.KV{{Key: "start_guid", Value: true}}},
			"1\x00dom0\x00domain-start\x00start_guid\x00True\x00\x00"},
		{"kwargs keep their order",
			events.Event{Subject: dom0, Name: "property-set:qrexec_timeout", Kwargs: []events.KV{
				{Key: "name", Value: "qrexec_timeout"}, {Key: "newvalue", Value: 30}, {Key: "oldvalue", Value: 60}}},
			"1\x00dom0\x00property-set:qrexec_timeout\x00name\x00qrexec_timeout\x00newvalue\x0030\x00oldvalue\x0060\x00\x00"},
		{"reverse order stays reversed",
			events.Event{Name: "e", Kwargs: []events.KV{{Key: "z", Value: "1"}, {Key: "a", Value: "2"}}},
			"1\x00\x00e\x00z\x001\x00a\x002\x00\x00"},
		{"nil value is None",
			events.Event{Name: "property-set:default_netvm", Kwargs: []events.KV{{Key: "newvalue", Value: nil}}},
			"1\x00\x00property-set:default_netvm\x00newvalue\x00None\x00\x00"},
		{"typed nil pointer is None",
			events.Event{Name: "property-set:netvm", Kwargs: []events.KV{{Key: "oldvalue", Value: nilQube}}},
			"1\x00\x00property-set:netvm\x00oldvalue\x00None\x00\x00"},
		{"bools are True and False",
			events.Event{Name: "e", Kwargs: []events.KV{{Key: "t", Value: true}, {Key: "f", Value: false}}},
			"1\x00\x00e\x00t\x00True\x00f\x00False\x00\x00"},
		{"ints in decimal",
			events.Event{Name: "e", Kwargs: []events.KV{{Key: "n", Value: -42}, {Key: "z", Value: 0}}},
			"1\x00\x00e\x00n\x00-42\x00z\x000\x00\x00"},
		{"a qube value renders its name",
			events.Event{Name: "domain-add", Kwargs: []events.KV{{Key: "vm", Value: dom0}}},
			"1\x00\x00domain-add\x00vm\x00dom0\x00\x00"},
		{"a Stringer value and subject use String",
			events.Event{Subject: stringer("x"), Name: "e", Kwargs: []events.KV{{Key: "k", Value: stringer("y")}}},
			"1\x00S(x)\x00e\x00k\x00S(y)\x00\x00"},
		{"empty string value",
			events.Event{Name: "domain-feature-set:f", Kwargs: []events.KV{{Key: "feature", Value: "f"}, {Key: "value", Value: ""}}},
			"1\x00\x00domain-feature-set:f\x00feature\x00f\x00value\x00\x00\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev
			if got := string(EventFrame(&ev)); got != tc.want {
				t.Errorf("EventFrame = %q, want %q", got, tc.want)
			}
		})
	}
}
