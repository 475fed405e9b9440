package vmm

import "sync"

// queue delivers events and state changes to the handlers on a goroutine of
// its own, in order, without ever blocking the producer (libvirt's event
// loop): it grows instead. Events arrive at the rate domains change state, so
// growth is bounded in practice by the number of domains.
type queue struct {
	onEvent func(Event)
	onState func(Status)

	mu      sync.Mutex
	items   []any // Event or Status
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	started bool
}

func newQueue(onEvent func(Event), onState func(Status)) *queue {
	return &queue{onEvent: onEvent, onState: onState, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

func (q *queue) start() {
	q.mu.Lock()
	q.started = true
	q.mu.Unlock()
	go q.run()
}

func (q *queue) push(ev Event)      { q.add(ev) }
func (q *queue) pushState(s Status) { q.add(s) }
func (q *queue) add(item any) {
	q.mu.Lock()
	q.items = append(q.items, item)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) run() {
	defer close(q.done)
	for {
		select {
		case <-q.wake:
			q.drain()
		case <-q.quit:
			q.drain()
			return
		}
	}
}

func (q *queue) drain() {
	for {
		q.mu.Lock()
		items := q.items
		q.items = nil
		q.mu.Unlock()
		if len(items) == 0 {
			return
		}
		for _, it := range items {
			switch v := it.(type) {
			case Event:
				if q.onEvent != nil {
					q.onEvent(v)
				}
			case Status:
				if q.onState != nil {
					q.onState(v)
				}
			}
		}
	}
}

// stop delivers what is queued and returns when the goroutine has ended.
func (q *queue) stop() {
	q.mu.Lock()
	started := q.started
	q.mu.Unlock()
	if !started {
		return
	}
	close(q.quit)
	<-q.done
}
