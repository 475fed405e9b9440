package vmm

import (
	"sync"

	"libvirt.org/go/libvirt"
)

// libvirt's default event loop is process-wide: it is registered once (it must
// be before the first connection is opened, or that connection gets no events
// and no keepalive), and one goroutine runs it while at least one Conn is open.
// The last Conn to close stops the goroutine; the next Open starts it again.
var loop struct {
	mu         sync.Mutex
	registered bool
	refs       int
	stop       chan struct{} // closed to ask the running goroutine to return
	done       chan struct{} // closed when it has
}

func acquireLoop() error {
	loop.mu.Lock()
	defer loop.mu.Unlock()
	if !loop.registered {
		if err := libvirt.EventRegisterDefaultImpl(); err != nil {
			return wrap("event loop registration", "", err)
		}
		loop.registered = true
	}
	loop.refs++
	if loop.refs == 1 {
		stop, done := make(chan struct{}), make(chan struct{})
		loop.stop, loop.done = stop, done
		go runLoop(stop, done)
	}
	return nil
}

func runLoop(stop, done chan struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		default:
		}
		// Blocks until one event (fd, timer) is handled. Errors here are
		// libvirt-internal and rare; the loop keeps going either way.
		_ = libvirt.EventRunDefaultImpl()
	}
}

// releaseLoop drops one reference; the last one stops the goroutine and waits
// for it. It must not be called from the event loop goroutine itself (a
// libvirt callback).
func releaseLoop() {
	loop.mu.Lock()
	defer loop.mu.Unlock()
	if loop.refs == 0 {
		return
	}
	loop.refs--
	if loop.refs > 0 {
		return
	}
	close(loop.stop)
	// wake EventRunDefaultImpl with a timer that fires at once
	var id int
	var idMu sync.Mutex
	idMu.Lock()
	id, err := libvirt.EventAddTimeout(0, func(int) {
		idMu.Lock()
		defer idMu.Unlock()
		_ = libvirt.EventRemoveTimeout(id)
	})
	idMu.Unlock()
	if err != nil {
		// never seen with the default implementation; the goroutine then
		// returns after the next event it handles
		return
	}
	<-loop.done
}
