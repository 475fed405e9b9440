package plugintests

import (
	"slices"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/pluginhost"
	"github.com/qubesgo/qubesd/core/qubes"
)

// reportLatency reports the median and 99th percentile of lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-us")
}

// BenchmarkExtensionSyncRoundTrip: an event fired under the write lock,
// delivered Sync to an extension process and answered.
func BenchmarkExtensionSyncRoundTrip(b *testing.B) {
	app := fixtureModel(b)
	startExtensions(b, app, "benchext")
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		var res []any
		_, err := app.Write(func() error {
			var err error
			res, err = app.Bus().Fire(nil, "bench-sync", false)
			return err
		})
		lat = append(lat, time.Since(t0))
		if err != nil || len(res) != 1 {
			b.Fatalf("results %v, %v", res, err)
		}
	}
	reportLatency(b, lat)
}

// BenchmarkExtensionNotifyRoundTrip: a Notify event queued to an extension
// until the extension has handled it and its answer is back in the
// daemon.
func BenchmarkExtensionNotifyRoundTrip(b *testing.B) {
	app := fixtureModel(b)
	handled := make(chan error, 1)
	startExtensionsWith(b, app, pluginhost.Options{Notified: func(_, _ string, err error) { handled <- err }}, "benchext")
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := app.Write(func() error { _, err := app.Bus().Fire(nil, "bench-notify", false); return err }); err != nil {
			b.Fatal(err)
		}
		select {
		case err := <-handled:
			if err != nil {
				b.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			b.Fatal("the notify event was not handled")
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// BenchmarkExtensionNotifyHostCall: a Notify event whose handler calls the
// Host back (fires an event), until that call arrives: an extension
// reacting to an event.
func BenchmarkExtensionNotifyHostCall(b *testing.B) {
	app := fixtureModel(b)
	startExtensions(b, app, "benchext")
	acks := make(chan struct{}, 1)
	app.Bus().Subscribe("bench-notify-ack", events.Observer, func(*events.Event) error { acks <- struct{}{}; return nil })
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := app.Write(func() error { _, err := app.Bus().Fire(nil, "bench-callback", false); return err }); err != nil {
			b.Fatal(err)
		}
		select {
		case <-acks:
		case <-time.After(10 * time.Second):
			b.Fatal("no acknowledgement")
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// BenchmarkPropertySetExtensions: a property set with 0 and with 4
// extensions subscribed Sync to property-set:*; compare the two p50s.
func BenchmarkPropertySetExtensions(b *testing.B) {
	for _, n := range []int{0, 4} {
		b.Run(map[int]string{0: "extensions=0", 4: "extensions=4"}[n], func(b *testing.B) {
			app := fixtureModel(b)
			if n > 0 {
				startExtensions(b, app, "benchext#1", "benchext#2", "benchext#3", "benchext#4")
			}
			var q *qubes.Qube
			_ = app.Read(func() error { q, _ = app.Qube("vm0001"); return nil })
			d, _ := q.Descriptor("memory")
			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				if _, err := app.Write(func() error { return q.Set(d, 400+i%100) }); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			reportLatency(b, lat)
		})
	}
}

// TestTenThousandSyncEvents: 10 000 Sync events through one extension, none
// lost: every one comes back with the extension's result.
func TestTenThousandSyncEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 10 000 round trips to a plugin process take a few seconds")
	}
	app := fixtureModel(t)
	startExtensions(t, app, "benchext")
	answered := 0
	for range 10000 {
		_, err := app.Write(func() error {
			res, err := app.Bus().Fire(nil, "bench-sync", false)
			if len(res) == 1 && res[0] == "ok" {
				answered++
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if answered != 10000 {
		t.Fatalf("%d of 10000 events answered", answered)
	}
}
