package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

// DefaultSocket is where qubesd listens for Admin API calls in dom0.
const DefaultSocket = "/var/run/qubesd.sock"

// SocketEnv is the environment variable that overrides DefaultSocket.
const SocketEnv = "QUBESD_SOCKET"

// AdminVM is the name of the AdminVM, the destination of every global call
// (admin.vm.List of all qubes, admin.property.*, admin.label.*, ...), and
// the source qubesd sees for calls made over its socket.
const AdminVM = "dom0"

// MaxRequestSize is the largest request, header and payload together, that
// qubesd accepts; it drops longer ones without a reply. Call refuses to send
// them.
const MaxRequestSize = 65536

// SocketFromEnv returns $QUBESD_SOCKET if it is set and not empty, else
// DefaultSocket.
func SocketFromEnv() string {
	if s := os.Getenv(SocketEnv); s != "" {
		return s
	}
	return DefaultSocket
}

// Client calls the Admin API over a unix socket. Its zero value is not
// usable; make one with New. A Client holds no connection (every call opens
// its own, as the protocol requires) and is safe for concurrent use.
type Client struct {
	socket string
	dialer net.Dialer
}

// New returns a client for the qubesd socket at path socket ("" means
// DefaultSocket).
func New(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	return &Client{socket: socket}
}

// Socket returns the path of the socket the client connects to.
func (c *Client) Socket() string { return c.socket }

// ConnError reports that the qubesd socket could not be reached.
type ConnError struct {
	Socket string // the socket path
	Err    error  // the underlying error from connect(2)
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("cannot connect to qubesd at %s: %v (is qubesd running? %s selects another socket)",
		e.Socket, unwrapSyscall(e.Err), SocketEnv)
}

func (e *ConnError) Unwrap() error { return e.Err }

// unwrapSyscall strips the "dial unix /path:" prefix net.OpError adds, since
// ConnError already names the socket.
func unwrapSyscall(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		var sys *os.SyscallError
		if errors.As(op.Err, &sys) && sys.Err != nil {
			return sys.Err
		}
		return op.Err
	}
	return err
}

// EncodeRequest returns the bytes of one Admin API request as the reference
// client sends them: "method+arg src name dest\x00payload". The method, arg,
// src and dest must not contain spaces or NUL bytes, and method and dest
// must not be empty.
func EncodeRequest(src, method, dest, arg string, payload []byte) ([]byte, error) {
	for _, f := range []struct{ what, v string }{
		{"method", method}, {"argument", arg}, {"source", src}, {"destination", dest},
	} {
		if strings.ContainsAny(f.v, " \x00") {
			return nil, fmt.Errorf("admin: %s %q contains a space or NUL byte", f.what, f.v)
		}
	}
	if method == "" || dest == "" || src == "" {
		return nil, errors.New("admin: method, source and destination must not be empty")
	}
	var b bytes.Buffer
	b.Grow(len(method) + len(arg) + len(src) + len(dest) + len(payload) + 9)
	b.WriteString(method)
	b.WriteByte('+')
	b.WriteString(arg)
	b.WriteByte(' ')
	b.WriteString(src)
	b.WriteString(" name ")
	b.WriteString(dest)
	b.WriteByte(0)
	b.Write(payload)
	return b.Bytes(), nil
}

// Call calls method with arg on dest, from dom0, and returns the body of a
// successful reply. An exception reply is returned as *Error, an empty reply
// as ErrEmptyReply, anything else as an error wrapping ErrMalformedReply.
// Cancelling ctx closes the connection; Call then returns ctx.Err().
func (c *Client) Call(ctx context.Context, method, dest, arg string, payload []byte) ([]byte, error) {
	return c.CallFrom(ctx, AdminVM, method, dest, arg, payload)
}

// CallFrom is Call with another source qube in the header. qubesd trusts
// the source field of calls made over its socket; qrexec sets it for calls
// from other qubes.
func (c *Client) CallFrom(ctx context.Context, src, method, dest, arg string, payload []byte) ([]byte, error) {
	req, err := EncodeRequest(src, method, dest, arg, payload)
	if err != nil {
		return nil, err
	}
	if len(req) > MaxRequestSize {
		return nil, fmt.Errorf("admin: %s request is %d bytes; qubesd accepts at most %d", method, len(req), MaxRequestSize)
	}
	reply, err := c.Raw(ctx, req)
	if err != nil {
		return nil, err
	}
	body, err := ParseReply(reply)
	if err != nil && !isDaemonError(err) {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return body, err
}

func isDaemonError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Raw sends request verbatim on a fresh connection, half-closes it and
// returns everything the daemon sent until EOF — possibly nothing. It does
// not parse the reply; see ParseReply.
func (c *Client) Raw(ctx context.Context, request []byte) ([]byte, error) {
	r, err := c.Send(ctx, request)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	reply, err := io.ReadAll(r)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("reading reply from qubesd at %s: %w", c.socket, err)
	}
	return reply, nil
}

// Send sends request verbatim on a fresh connection, half-closes it, and
// returns the connection for reading the reply as it arrives — for event
// streams, or to pass a reply through unparsed. The caller must close it;
// cancelling ctx closes it too.
func (c *Client) Send(ctx context.Context, request []byte) (io.ReadCloser, error) {
	conn, err := c.send(ctx, request)
	if err != nil {
		return nil, err
	}
	return &ctxConn{UnixConn: conn, stop: context.AfterFunc(ctx, func() { conn.Close() })}, nil
}

// ctxConn is a connection closed by its context's cancellation.
type ctxConn struct {
	*net.UnixConn
	stop func() bool
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.UnixConn.Close()
}

// send connects, writes request and half-closes the write side. The caller
// owns the returned connection.
func (c *Client) send(ctx context.Context, request []byte) (*net.UnixConn, error) {
	nc, err := c.dialer.DialContext(ctx, "unix", c.socket)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConnError{Socket: c.socket, Err: err}
	}
	conn := nc.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	_, werr := conn.Write(request)
	if werr == nil {
		werr = conn.CloseWrite()
	}
	if !stop() || ctx.Err() != nil {
		conn.Close()
		return nil, ctx.Err()
	}
	if werr != nil {
		conn.Close()
		return nil, fmt.Errorf("sending request to qubesd at %s: %w", c.socket, werr)
	}
	return conn, nil
}
