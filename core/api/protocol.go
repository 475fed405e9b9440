// Package api serves the Qubes Admin API: the wire protocol of the
// reference daemon's unix sockets, one table of methods that drives dispatch
// and validation, the handlers by area (admin_vm.go, admin_property.go, ...)
// and the admin.Events stream.
//
// A request is one connection: the client writes
//
//	method+arg SP src SP dest_type SP dest NUL payload
//
// and half-closes; the server answers with one reply and closes. Replies are
// "0\x00" + body, a stream of "1\x00" event frames, or
// "2\x00" + exception name + "\x00\x00" + message + "\x00". Unlike the
// reference, which drops the connection without a reply on framing errors
// and unexpected exceptions, every request here gets a typed reply.
package api

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// MaxRequest is the largest request (header and payload) the server reads.
const MaxRequest = 65536

// Request is a request as framed on the wire, before any validation of its
// fields: every field is untrusted.
type Request struct {
	Method   string
	Arg      string
	Src      string
	DestType string // "name" (a "keyword adminvm" destination is rewritten to name dom0)
	Dest     string
	Payload  []byte
}

// ParseRequest splits raw request bytes into their fields. It checks the
// framing only; names and values are validated by the dispatcher.
func ParseRequest(raw []byte) (*Request, error) {
	if len(raw) > MaxRequest {
		return nil, qerr.New(qerr.ProtocolError, "request too long: %d bytes, the limit is %d", len(raw), MaxRequest)
	}
	i := bytes.IndexByte(raw, 0)
	if i < 0 {
		return nil, qerr.New(qerr.ProtocolError, "framing error: the request has no NUL byte after its header")
	}
	fields := bytes.SplitN(raw[:i], []byte{' '}, 4)
	if len(fields) != 4 {
		return nil, qerr.New(qerr.ProtocolError, "framing error: the header must be 'method+arg src dest_type dest', got %d fields", len(fields))
	}
	r := &Request{Src: string(fields[1]), DestType: string(fields[2]), Dest: string(fields[3]), Payload: raw[i+1:]}
	method, arg, _ := bytes.Cut(fields[0], []byte{'+'})
	r.Method, r.Arg = string(method), string(arg)
	switch {
	case r.DestType == "name":
	case r.DestType == "keyword" && r.Dest == "adminvm":
		r.DestType, r.Dest = "name", "dom0"
	default:
		return nil, qerr.New(qerr.ProtocolError, "framing error: destination type %s is not supported (use 'name' or 'keyword adminvm')", property.PyRepr(r.DestType))
	}
	return r, nil
}

// Encode renders the request in wire form (for clients and tests).
func (r *Request) Encode() []byte {
	var b bytes.Buffer
	b.WriteString(r.Method)
	b.WriteByte('+')
	b.WriteString(r.Arg)
	b.WriteByte(' ')
	b.WriteString(r.Src)
	b.WriteByte(' ')
	dt := r.DestType
	if dt == "" {
		dt = "name"
	}
	b.WriteString(dt)
	b.WriteByte(' ')
	b.WriteString(r.Dest)
	b.WriteByte(0)
	b.Write(r.Payload)
	return b.Bytes()
}

// OKReply is a successful reply with body.
func OKReply(body []byte) []byte {
	out := make([]byte, 0, 2+len(body))
	out = append(out, '0', 0)
	return append(out, body...)
}

// ErrorReply renders err as an exception reply. Errors without a kind are
// reported as QubesException with their message.
func ErrorReply(err error) []byte {
	kind := qerr.KindOf(err)
	if kind == "" {
		kind = qerr.Exception
	}
	var b bytes.Buffer
	b.WriteString("2\x00")
	b.WriteString(string(kind))
	b.WriteString("\x00\x00")
	b.WriteString(err.Error())
	b.WriteByte(0)
	return b.Bytes()
}

// EventFrame renders an event as an admin.Events frame: subject, name, then
// key/value pairs, each NUL-terminated, and a final NUL.
func EventFrame(e *events.Event) []byte {
	var b bytes.Buffer
	b.WriteString("1\x00")
	b.WriteString(subjectName(e.Subject))
	b.WriteByte(0)
	b.WriteString(e.Name)
	b.WriteByte(0)
	for _, kv := range e.Kwargs {
		b.WriteString(kv.Key)
		b.WriteByte(0)
		b.WriteString(eventValue(kv.Value))
		b.WriteByte(0)
	}
	b.WriteByte(0)
	return b.Bytes()
}

func subjectName(s any) string {
	if s == nil {
		return ""
	}
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprint(s)
}

// eventValue formats a kwarg as the reference's str() does; none is "None".
func eventValue(v any) string {
	if v == nil {
		return "None"
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return "None"
	}
	return property.FormatValue(v)
}
