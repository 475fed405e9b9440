package events_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/qubesgo/qubesd/core/events"
)

// recorder collects labels in the order handlers run. It is safe for
// concurrent use.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// record returns a handler that appends label to r.
func (r *recorder) record(label string) events.Handler {
	return func(*events.Event) error {
		r.add(label)
		return nil
	}
}

func TestValidatePattern(t *testing.T) {
	tests := []struct {
		pattern string
		ok      bool
	}{
		{"domain-add", true},
		{"property-set:netvm", true},
		{"*", true},
		{"property-set:*", true},
		{"domain-feature-set:service.*", true},
		{"", false},
		{"a*b", false},
		{"*x", false},
		{"**", false},
		{"prefix**", false},
		{"a*b*", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.pattern), func(t *testing.T) {
			err := events.ValidatePattern(tc.pattern)
			if tc.ok && err != nil {
				t.Errorf("ValidatePattern(%q) = %v, want nil", tc.pattern, err)
			}
			if !tc.ok && err == nil {
				t.Errorf("ValidatePattern(%q) = nil, want an error", tc.pattern)
			}
		})
	}
}

func TestSubscribePanicsOnInvalidPattern(t *testing.T) {
	for _, p := range []string{"", "a*b", "*x"} {
		t.Run(fmt.Sprintf("%q", p), func(t *testing.T) {
			b := events.New()
			defer func() {
				if recover() == nil {
					t.Errorf("Subscribe(%q) did not panic", p)
				}
			}()
			b.Subscribe(p, events.Core, func(*events.Event) error { return nil })
		})
	}
}

func TestMatching(t *testing.T) {
	tests := []struct {
		pattern string
		name    string
		match   bool
	}{
		{"property-set:netvm", "property-set:netvm", true},
		{"property-set:net", "property-set:netvm", false},
		{"property-set:netvm", "property-set:net", false},
		{"property-set:netvm", "property-set:netvm2", false},
		{"*", "property-set:netvm", true},
		{"*", "domain-add", true},
		{"property-set:*", "property-set:netvm", true},
		{"property-set:*", "property-set:", true},
		{"property-set:*", "property-pre-set:netvm", false},
		{"property-pre-set:*", "property-set:netvm", false},
		{"property-pre-set:*", "property-pre-set:netvm", true},
		{"property-*", "property-pre-set:netvm", true},
		{"property-*", "property-set:netvm", true},
		{"property-*", "domain-add", false},
		{"set:*", "property-set:netvm", false},          // prefix, not substring
		{"netvm*", "property-set:netvm", false},         // prefix, not suffix
		{"Property-set:*", "property-set:netvm", false}, // case-sensitive
		{"domain-feature-set:service.*", "domain-feature-set:service.cups", true},
		{"domain-feature-set:service.*", "domain-feature-set:gui", false},
	}
	for _, tc := range tests {
		t.Run(tc.pattern+"/"+tc.name, func(t *testing.T) {
			b := events.New()
			var calls int
			b.Subscribe(tc.pattern, events.Core, func(e *events.Event) error {
				calls++
				if e.Name != tc.name {
					t.Errorf("handler got event %q, want %q", e.Name, tc.name)
				}
				return nil
			})
			if _, err := b.Fire(nil, tc.name, false); err != nil {
				t.Fatalf("Fire: %v", err)
			}
			want := 0
			if tc.match {
				want = 1
			}
			if calls != want {
				t.Errorf("pattern %q, event %q: handler ran %d times, want %d", tc.pattern, tc.name, calls, want)
			}
		})
	}
}

func TestEventFields(t *testing.T) {
	b := events.New()
	subject := &struct{ name string }{"vm1"}
	var got *events.Event
	b.Subscribe("domain-start", events.Core, func(e *events.Event) error {
		got = e
		return nil
	})
	if _, err := b.Fire(subject, "domain-start", false, events.KV{Key: "start_guid", Value: true}); err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Fatal("handler did not run")
	}
	if got.Subject != subject || got.Name != "domain-start" || got.Pre {
		t.Errorf("event = {Subject: %v, Name: %q, Pre: %v}, want {%v, %q, false}", got.Subject, got.Name, got.Pre, subject, "domain-start")
	}

	got = nil
	b.Subscribe("domain-pre-start", events.Core, func(e *events.Event) error {
		got = e
		return nil
	})
	if _, err := b.Fire(nil, "domain-pre-start", true); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Subject != nil || !got.Pre {
		t.Errorf("pre event = %+v, want nil subject and Pre=true", got)
	}
}

func TestDispatchOrder(t *testing.T) {
	// Tiers are deliberately subscribed out of order.
	subs := []struct {
		label string
		tier  events.Tier
	}{
		{"obs1", events.Observer},
		{"core1", events.Core},
		{"ext1", events.Extension},
		{"core2", events.Core},
		{"obs2", events.Observer},
		{"ext2", events.Extension},
		{"core3", events.Core},
	}
	normal := []string{"core1", "core2", "core3", "ext1", "ext2", "obs1", "obs2"}
	reversed := slices.Clone(normal)
	slices.Reverse(reversed)

	tests := []struct {
		name  string
		event string
		pre   bool
		want  []string
	}{
		{"normal", "domain-start", false, normal},
		{"pre", "domain-pre-start", true, reversed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := events.New()
			var r recorder
			for _, s := range subs {
				b.Subscribe("*", s.tier, r.record(s.label))
			}
			if _, err := b.Fire(nil, tc.event, tc.pre); err != nil {
				t.Fatal(err)
			}
			if got := r.list(); !slices.Equal(got, tc.want) {
				t.Errorf("order = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDispatchOrderMixedPatterns(t *testing.T) {
	// Order depends on tier and subscription order only, not on how the
	// handler's pattern matched.
	b := events.New()
	var r recorder
	b.Subscribe("*", events.Observer, r.record("obs*"))
	b.Subscribe("property-set:netvm", events.Core, r.record("core-exact"))
	b.Subscribe("property-set:*", events.Core, r.record("core-prefix"))
	b.Subscribe("property-*", events.Extension, r.record("ext-prefix"))
	b.Subscribe("*", events.Core, r.record("core*"))
	b.Subscribe("property-set:netvm", events.Observer, r.record("obs-exact"))
	if _, err := b.Fire(nil, "property-set:netvm", false); err != nil {
		t.Fatal(err)
	}
	want := []string{"core-exact", "core-prefix", "core*", "ext-prefix", "obs*", "obs-exact"}
	if got := r.list(); !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestHandlerErrorStopsDispatch(t *testing.T) {
	veto := errors.New("veto")
	tests := []struct {
		name        string
		pre         bool
		failAt      string
		wantRan     []string
		wantResults []any
	}{
		{
			name:        "normal/fail in extension",
			failAt:      "ext1",
			wantRan:     []string{"core1", "core2", "ext1"},
			wantResults: []any{"core1", "core2a", "core2b"},
		},
		{
			name:        "normal/fail in first handler",
			failAt:      "core1",
			wantRan:     []string{"core1"},
			wantResults: nil,
		},
		{
			name:        "normal/fail in last handler",
			failAt:      "obs1",
			wantRan:     []string{"core1", "core2", "ext1", "obs1"},
			wantResults: []any{"core1", "core2a", "core2b", "ext1", "ext1-extra"},
		},
		{
			name:        "pre/veto in extension",
			pre:         true,
			failAt:      "ext1",
			wantRan:     []string{"obs1", "ext1"},
			wantResults: []any{"obs1"},
		},
		{
			name:        "pre/veto by core",
			pre:         true,
			failAt:      "core1",
			wantRan:     []string{"obs1", "ext1", "core2", "core1"},
			wantResults: []any{"obs1", "ext1", "ext1-extra", "core2a", "core2b"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := events.New()
			var r recorder
			// handler records its label, then fails if it is failAt, else
			// returns values.
			h := func(label string, vals ...any) events.Handler {
				return func(e *events.Event) error {
					r.add(label)
					if label == tc.failAt {
						return veto
					}
					e.Return(vals...)
					return nil
				}
			}
			b.Subscribe("ev*", events.Observer, h("obs1", "obs1"))
			b.Subscribe("ev*", events.Core, h("core1", "core1"))
			b.Subscribe("ev*", events.Extension, h("ext1", "ext1", "ext1-extra"))
			b.Subscribe("ev*", events.Core, h("core2", "core2a", "core2b"))

			got, err := b.Fire(nil, "ev", tc.pre)
			if err != veto {
				t.Errorf("Fire error = %v, want the handler's error returned as is", err)
			}
			if ran := r.list(); !slices.Equal(ran, tc.wantRan) {
				t.Errorf("handlers ran = %v, want %v", ran, tc.wantRan)
			}
			if !slices.Equal(got, tc.wantResults) {
				t.Errorf("results = %v, want %v", got, tc.wantResults)
			}
		})
	}
}

func TestResults(t *testing.T) {
	b := events.New()
	got, err := b.Fire(nil, "nobody-listens", false)
	if err != nil || len(got) != 0 {
		t.Errorf("Fire with no handlers = %v, %v; want no results, nil", got, err)
	}

	b.Subscribe("ev", events.Observer, func(e *events.Event) error { e.Return("o"); return nil })
	b.Subscribe("ev", events.Core, func(e *events.Event) error { e.Return(1, 2); return nil })
	b.Subscribe("ev", events.Extension, func(e *events.Event) error { return nil }) // returns nothing
	b.Subscribe("ev", events.Core, func(e *events.Event) error { e.Return(nil); e.Return(true); return nil })
	tests := []struct {
		pre  bool
		want []any
	}{
		{false, []any{1, 2, nil, true, "o"}},
		{true, []any{"o", nil, true, 1, 2}},
	}
	for _, tc := range tests {
		got, err := b.Fire(nil, "ev", tc.pre)
		if err != nil {
			t.Fatalf("pre=%v: %v", tc.pre, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("pre=%v: results = %v, want %v", tc.pre, got, tc.want)
		}
	}
}

func TestNestedFire(t *testing.T) {
	b := events.New()
	var r recorder
	seqs := map[string]uint64{}
	// The core reacts to property-set:label by announcing the change of a
	// dependent computed value, as the reference does for the icon.
	b.Subscribe("property-set:label", events.Core, func(e *events.Event) error {
		r.add("core:" + e.Name)
		_, err := b.Fire(e.Subject, "property-reset:icon", false, events.KV{Key: "name", Value: "icon"})
		return err
	})
	b.Subscribe("*", events.Observer, func(e *events.Event) error {
		r.add("observer:" + e.Name)
		seqs[e.Name] = e.Seq
		return nil
	})
	if _, err := b.Fire("vm1", "property-set:label", false, events.KV{Key: "name", Value: "label"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"core:property-set:label", "observer:property-reset:icon", "observer:property-set:label"}
	if got := r.list(); !slices.Equal(got, want) {
		t.Errorf("sequence = %v, want %v", got, want)
	}
	// Sequence numbers follow firing order: the outer event was fired first.
	if !(seqs["property-set:label"] < seqs["property-reset:icon"]) {
		t.Errorf("seq outer = %d, nested = %d; want outer < nested", seqs["property-set:label"], seqs["property-reset:icon"])
	}
	if got := b.LastSeq(); got != seqs["property-reset:icon"] {
		t.Errorf("LastSeq = %d, want %d", got, seqs["property-reset:icon"])
	}
}

func TestNestedVetoPropagates(t *testing.T) {
	b := events.New()
	veto := errors.New("nested veto")
	b.Subscribe("outer", events.Core, func(e *events.Event) error {
		_, err := b.Fire(nil, "inner-pre-check", true)
		return err
	})
	b.Subscribe("inner-pre-check", events.Extension, func(*events.Event) error { return veto })
	var observed bool
	b.Subscribe("outer", events.Observer, func(*events.Event) error { observed = true; return nil })
	if _, err := b.Fire(nil, "outer", false); !errors.Is(err, veto) {
		t.Errorf("Fire = %v, want %v", err, veto)
	}
	if observed {
		t.Error("observer ran after the core handler failed")
	}
}

func TestSeq(t *testing.T) {
	b := events.New()
	if got := b.LastSeq(); got != 0 {
		t.Errorf("LastSeq of a new bus = %d, want 0", got)
	}
	var seqs []uint64
	b.Subscribe("seen-*", events.Observer, func(e *events.Event) error {
		seqs = append(seqs, e.Seq)
		return nil
	})
	names := []string{"seen-a", "unseen", "seen-b", "seen-b", "unseen", "seen-c"}
	for i, name := range names {
		if _, err := b.Fire(nil, name, i%2 == 1); err != nil {
			t.Fatal(err)
		}
		// Every Fire takes a number, whether or not anyone listens.
		if got := b.LastSeq(); got != uint64(i+1) {
			t.Errorf("after %d events LastSeq = %d, want %d", i+1, got, i+1)
		}
	}
	if len(seqs) != 4 {
		t.Fatalf("observer saw %d events, want 4", len(seqs))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Errorf("seqs not strictly increasing: %v", seqs)
		}
	}
	if seqs[len(seqs)-1] != b.LastSeq() {
		t.Errorf("last seq seen = %d, LastSeq = %d", seqs[len(seqs)-1], b.LastSeq())
	}

	// Buses are independent.
	if other := events.New(); other.LastSeq() != 0 {
		t.Errorf("new bus LastSeq = %d, want 0", other.LastSeq())
	}
}

func TestUnsubscribe(t *testing.T) {
	b := events.New()
	var r recorder
	unA := b.Subscribe("ev", events.Core, r.record("a"))
	unB := b.Subscribe("ev", events.Core, r.record("b"))
	b.Subscribe("ev", events.Core, r.record("c"))

	fire := func() []string {
		t.Helper()
		r.mu.Lock()
		r.got = nil
		r.mu.Unlock()
		if _, err := b.Fire(nil, "ev", false); err != nil {
			t.Fatal(err)
		}
		return r.list()
	}
	if got, want := fire(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("before unsubscribe: %v, want %v", got, want)
	}
	unB()
	if got, want := fire(), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("after unsubscribing b: %v, want %v", got, want)
	}
	unB() // second call is a no-op
	if got, want := fire(), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("after unsubscribing b twice: %v, want %v", got, want)
	}
	unA()
	d := b.Subscribe("ev", events.Core, r.record("d"))
	if got, want := fire(), []string{"c", "d"}; !slices.Equal(got, want) {
		t.Errorf("after unsubscribing a and adding d: %v, want %v", got, want)
	}
	unA()
	d()
	d()
	if got, want := fire(), []string{"c"}; !slices.Equal(got, want) {
		t.Errorf("at the end: %v, want %v", got, want)
	}
}

func TestUnsubscribeSameHandlerTwoSubscriptions(t *testing.T) {
	// The same function subscribed twice is two subscriptions; removing one
	// keeps the other.
	b := events.New()
	var calls int
	h := func(*events.Event) error { calls++; return nil }
	un1 := b.Subscribe("ev", events.Core, h)
	b.Subscribe("e*", events.Core, h)
	if _, err := b.Fire(nil, "ev", false); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("calls = %d, want 2", calls)
	}
	un1()
	calls = 0
	if _, err := b.Fire(nil, "ev", false); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("after unsubscribing one: calls = %d, want 1", calls)
	}
}

func TestUnsubscribeDuringDispatch(t *testing.T) {
	b := events.New()
	var r recorder
	var unSelf, unLater func()
	unSelf = b.Subscribe("ev", events.Core, func(*events.Event) error {
		r.add("self")
		unSelf()
		unSelf() // twice, from inside the dispatch
		unLater()
		return nil
	})
	unLater = b.Subscribe("ev", events.Observer, r.record("later"))
	b.Subscribe("ev", events.Extension, r.record("other"))

	// Must not deadlock.
	if _, err := b.Fire(nil, "ev", false); err != nil {
		t.Fatal(err)
	}
	// "later" was removed before its turn came: once the remove function
	// has returned, the handler is not called again, even by the dispatch
	// in progress.
	if got, want := r.list(), []string{"self", "other"}; !slices.Equal(got, want) {
		t.Fatalf("first dispatch = %v, want %v", got, want)
	}

	r.mu.Lock()
	r.got = nil
	r.mu.Unlock()
	if _, err := b.Fire(nil, "ev", false); err != nil {
		t.Fatal(err)
	}
	if got, want := r.list(), []string{"other"}; !slices.Equal(got, want) {
		t.Errorf("second dispatch = %v, want %v", got, want)
	}
}

func TestSubscribeDuringDispatch(t *testing.T) {
	b := events.New()
	var r recorder
	var added bool
	b.Subscribe("ev", events.Core, func(*events.Event) error {
		r.add("first")
		if !added {
			added = true
			// Must not deadlock.
			b.Subscribe("ev", events.Core, r.record("new"))
			b.Subscribe("*", events.Observer, r.record("new-observer"))
		}
		return nil
	})
	if _, err := b.Fire(nil, "ev", false); err != nil {
		t.Fatal(err)
	}
	// Whether the new handlers see the current event is not specified.
	if got := r.list(); len(got) == 0 || got[0] != "first" {
		t.Fatalf("first dispatch = %v", got)
	}

	r.mu.Lock()
	r.got = nil
	r.mu.Unlock()
	if _, err := b.Fire(nil, "ev", false); err != nil {
		t.Fatal(err)
	}
	if got, want := r.list(), []string{"first", "new", "new-observer"}; !slices.Equal(got, want) {
		t.Errorf("second dispatch = %v, want %v", got, want)
	}
}

func TestEventArg(t *testing.T) {
	b := events.New()
	kwargs := []events.KV{
		{Key: "name", Value: "netvm"},
		{Key: "newvalue", Value: "sys-firewall"},
		{Key: "oldvalue", Value: nil},
		{Key: "count", Value: 3},
	}
	var got *events.Event
	b.Subscribe("property-set:*", events.Core, func(e *events.Event) error { got = e; return nil })
	if _, err := b.Fire(nil, "property-set:netvm", false, kwargs...); err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Fatal("handler did not run")
	}
	if !slices.Equal(got.Kwargs, kwargs) {
		t.Errorf("Kwargs = %v, want %v (in order)", got.Kwargs, kwargs)
	}

	tests := []struct {
		key   string
		value any
		ok    bool
	}{
		{"name", "netvm", true},
		{"newvalue", "sys-firewall", true},
		{"oldvalue", nil, true}, // present with a nil value
		{"count", 3, true},
		{"missing", nil, false},
		{"", nil, false},
		{"Name", nil, false},
	}
	for _, tc := range tests {
		v, ok := got.Arg(tc.key)
		if v != tc.value || ok != tc.ok {
			t.Errorf("Arg(%q) = %v, %v; want %v, %v", tc.key, v, ok, tc.value, tc.ok)
		}
	}

	var none events.Event
	if v, ok := none.Arg("name"); v != nil || ok {
		t.Errorf("Arg on an event without kwargs = %v, %v; want nil, false", v, ok)
	}
}

func TestDispatchCacheManyNames(t *testing.T) {
	const n = 5000 // more than the bus caches
	b := events.New()
	var first, other atomic.Int64
	b.Subscribe("domain-feature-set:*", events.Observer, func(*events.Event) error { first.Add(1); return nil })
	b.Subscribe("domain-tag-add:*", events.Core, func(*events.Event) error { other.Add(1); return nil })

	fireAll := func() {
		t.Helper()
		for i := range n {
			if _, err := b.Fire(nil, fmt.Sprintf("domain-feature-set:f%d", i), false); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Fire(nil, fmt.Sprintf("unrelated-%d", i), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	fireAll()
	if got := first.Load(); got != n {
		t.Errorf("prefix subscriber saw %d events, want %d", got, n)
	}
	if got := other.Load(); got != 0 {
		t.Errorf("non-matching subscriber saw %d events, want 0", got)
	}

	// A subscription added after the names were seen still receives them,
	// including names seen early and late.
	var late atomic.Int64
	b.Subscribe("domain-feature-set:*", events.Core, func(*events.Event) error { late.Add(1); return nil })
	var exactEarly, exactLate atomic.Int64
	b.Subscribe("domain-feature-set:f0", events.Extension, func(*events.Event) error { exactEarly.Add(1); return nil })
	b.Subscribe(fmt.Sprintf("domain-feature-set:f%d", n-1), events.Extension, func(*events.Event) error { exactLate.Add(1); return nil })
	first.Store(0)
	fireAll()
	if got := first.Load(); got != n {
		t.Errorf("second round: old subscriber saw %d events, want %d", got, n)
	}
	if got := late.Load(); got != n {
		t.Errorf("second round: late subscriber saw %d events, want %d", got, n)
	}
	if exactEarly.Load() != 1 || exactLate.Load() != 1 {
		t.Errorf("late exact subscribers saw %d and %d events, want 1 and 1", exactEarly.Load(), exactLate.Load())
	}

	// And an unsubscribed handler stops receiving cached names.
	var r recorder
	un := b.Subscribe("domain-feature-set:*", events.Observer, r.record("gone"))
	if _, err := b.Fire(nil, "domain-feature-set:f1", false); err != nil {
		t.Fatal(err)
	}
	un()
	if _, err := b.Fire(nil, "domain-feature-set:f1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fire(nil, fmt.Sprintf("domain-feature-set:f%d", n-2), false); err != nil {
		t.Fatal(err)
	}
	if got := r.list(); len(got) != 1 {
		t.Errorf("unsubscribed handler ran %d times, want 1", len(got))
	}
}

func TestConcurrentFireAndSubscribe(t *testing.T) {
	const (
		firers   = 4
		perFirer = 500
		churners = 4
		churns   = 200
	)
	b := events.New()

	var (
		seenMu sync.Mutex
		seen   = map[uint64]bool{}
		dups   int
	)
	b.Subscribe("load:*", events.Observer, func(e *events.Event) error {
		seenMu.Lock()
		if seen[e.Seq] {
			dups++
		}
		seen[e.Seq] = true
		seenMu.Unlock()
		return nil
	})
	var churnCalls atomic.Int64
	churnHandler := func(*events.Event) error { churnCalls.Add(1); return nil }

	var wg sync.WaitGroup
	for g := range firers {
		wg.Go(func() {
			for i := range perFirer {
				// Distinct names also exercise the bounded cache concurrently.
				if _, err := b.Fire(g, fmt.Sprintf("load:g%d-%d", g, i), i%3 == 0, events.KV{Key: "i", Value: i}); err != nil {
					t.Errorf("Fire: %v", err)
					return
				}
				_ = b.LastSeq()
			}
		})
	}
	patterns := []string{"*", "load:*", "load:g0-1", "load:g1-*"}
	for g := range churners {
		wg.Go(func() {
			for i := range churns {
				un := b.Subscribe(patterns[(g+i)%len(patterns)], events.Tier(i%3), churnHandler)
				if i%2 == 0 {
					un()
					un()
				} else {
					// Unsubscribe from inside a dispatch.
					var unIn func()
					// The name is private to this goroutine: only its own
					// Fire can reach the handler.
					name := fmt.Sprintf("churn-%d", g)
					unIn = b.Subscribe(name, events.Core, func(*events.Event) error { unIn(); return nil })
					if _, err := b.Fire(nil, name, false); err != nil {
						t.Errorf("Fire churn: %v", err)
					}
					unIn()
					un()
				}
			}
		})
	}
	wg.Wait()

	seenMu.Lock()
	if len(seen) != firers*perFirer || dups != 0 {
		t.Errorf("persistent subscriber saw %d distinct seqs (%d duplicates), want %d and 0", len(seen), dups, firers*perFirer)
	}
	seenMu.Unlock()
	if got, min := b.LastSeq(), uint64(firers*perFirer); got < min {
		t.Errorf("LastSeq = %d, want at least %d", got, min)
	}

	// Every churn subscription was removed.
	before := churnCalls.Load()
	if _, err := b.Fire(nil, "load:g1-x", false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fire(nil, "load:g0-1", false); err != nil {
		t.Fatal(err)
	}
	if after := churnCalls.Load(); after != before {
		t.Errorf("removed subscriptions still ran: %d calls", after-before)
	}
}
