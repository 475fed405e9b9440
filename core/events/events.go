// Package events is the core's event bus.
//
// Everything that happens to the model is announced as a named event with a
// subject (a qube, or nil for the application itself) and ordered keyword
// arguments: "property-set:netvm", "domain-feature-set:service.cups",
// "domain-add", ... Handlers subscribe to an exact name, to "*", or to a
// prefix pattern such as "property-set:*".
//
// Fire runs the matching handlers synchronously in a deterministic order:
//
//   - by tier: Core handlers, then Extension handlers, then Observer handlers
//     (API event streams); within a tier in subscription order;
//   - pre-events (whose names contain "-pre-", fired with pre=true) run in
//     the reverse order, observers first, so that the core has the last word.
//
// The first handler that returns an error stops the dispatch and Fire returns
// that error; for a pre-event that is a veto. Handlers may fire further events
// from inside a handler (nested events); an observer therefore sees nested
// events before the event that caused them, as in the reference daemon.
// Every fired event gets a sequence number from one global counter.
package events

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// KV is one keyword argument of an event. Kwargs are ordered: the Admin API
// transmits them in order.
type KV struct {
	Key   string
	Value any
}

// Event is one firing of an event.
type Event struct {
	Seq     uint64 // global sequence number, increasing in firing order
	Subject any    // the qube the event is about, nil for the application
	Name    string
	Pre     bool // a pre-event: handler errors are vetoes
	Kwargs  []KV

	results []any
}

// Arg returns the value of keyword argument key, and whether it was given.
func (e *Event) Arg(key string) (any, bool) {
	for _, kv := range e.Kwargs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Return adds values to the results Fire collects from all handlers.
func (e *Event) Return(vals ...any) { e.results = append(e.results, vals...) }

// Handler handles one event. Returning an error stops the dispatch.
type Handler func(e *Event) error

// Tier orders handlers: lower tiers run first for normal events and last for
// pre-events.
type Tier uint8

const (
	Core      Tier = iota // the model's own rules
	Extension             // extensions, in configuration order
	Observer              // Admin API event streams and other watchers
)

// ValidatePattern reports whether p is a pattern Subscribe accepts: a
// non-empty exact name, "*", or a prefix followed by a single trailing "*".
func ValidatePattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty event pattern")
	}
	if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
		return fmt.Errorf("event pattern %q: '*' may only end a pattern (exact name, \"*\" or \"prefix*\")", p)
	}
	return nil
}

type subscription struct {
	pattern string
	prefix  bool // pattern ends in '*': match by prefix pattern[:len-1]
	tier    Tier
	order   uint64
	handler Handler
	dead    atomic.Bool
}

func (s *subscription) matches(name string) bool {
	if s.prefix {
		return strings.HasPrefix(name, s.pattern[:len(s.pattern)-1])
	}
	return s.pattern == name
}

// maxCachedNames bounds the per-name dispatch cache: event names include
// user-chosen feature and tag names, so the set of names is unbounded.
const maxCachedNames = 4096

// table is an immutable set of subscriptions plus a cache of which of them
// match a given event name. Subscribing replaces the whole table.
type table struct {
	subs   []*subscription // sorted by (tier, order)
	mu     sync.Mutex
	byName map[string][]*subscription
}

func (t *table) matching(name string) []*subscription {
	t.mu.Lock()
	m, ok := t.byName[name]
	t.mu.Unlock()
	if ok {
		return m
	}
	for _, s := range t.subs {
		if s.matches(name) {
			m = append(m, s)
		}
	}
	t.mu.Lock()
	if len(t.byName) < maxCachedNames {
		t.byName[name] = m
	}
	t.mu.Unlock()
	return m
}

// Bus dispatches events to subscribers. The zero value is not usable; use New.
type Bus struct {
	mu    sync.Mutex // serialises Subscribe/unsubscribe
	cur   atomic.Pointer[table]
	order uint64
	seq   atomic.Uint64
}

// New returns an empty bus.
func New() *Bus {
	b := &Bus{}
	b.cur.Store(&table{byName: map[string][]*subscription{}})
	return b
}

// Subscribe registers h for events matching pattern and returns a function
// that removes the subscription (safe to call more than once). It panics on
// an invalid pattern: patterns from outside the core must be checked with
// ValidatePattern first.
func (b *Bus) Subscribe(pattern string, tier Tier, h Handler) (unsubscribe func()) {
	if err := ValidatePattern(pattern); err != nil {
		panic(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.order++
	s := &subscription{
		pattern: pattern,
		prefix:  strings.HasSuffix(pattern, "*"),
		tier:    tier,
		order:   b.order,
		handler: h,
	}
	old := b.cur.Load().subs
	subs := make([]*subscription, 0, len(old)+1)
	// keep (tier, order) order: insert after the last subscription of the same or a lower tier
	i := len(old)
	for i > 0 && old[i-1].tier > tier {
		i--
	}
	subs = append(subs, old[:i]...)
	subs = append(subs, s)
	subs = append(subs, old[i:]...)
	b.cur.Store(&table{subs: subs, byName: map[string][]*subscription{}})
	return func() { b.unsubscribe(s) }
}

func (b *Bus) unsubscribe(s *subscription) {
	if s.dead.Swap(true) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.cur.Load().subs
	subs := make([]*subscription, 0, len(old))
	for _, o := range old {
		if o != s {
			subs = append(subs, o)
		}
	}
	b.cur.Store(&table{subs: subs, byName: map[string][]*subscription{}})
}

// Fire dispatches an event and returns the values the handlers returned, in
// dispatch order. The first handler error stops the dispatch and is returned
// as is (a veto, for a pre-event).
func (b *Bus) Fire(subject any, name string, pre bool, kwargs ...KV) ([]any, error) {
	e := &Event{Seq: b.seq.Add(1), Subject: subject, Name: name, Pre: pre, Kwargs: kwargs}
	subs := b.cur.Load().matching(name)
	n := len(subs)
	for i := range n {
		s := subs[i]
		if pre {
			s = subs[n-1-i]
		}
		if s.dead.Load() {
			continue
		}
		if err := s.handler(e); err != nil {
			return e.results, err
		}
	}
	return e.results, nil
}

// LastSeq returns the sequence number of the most recently fired event.
func (b *Bus) LastSeq() uint64 { return b.seq.Load() }
