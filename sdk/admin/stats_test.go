package admin

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
)

// statsFrame encodes one event frame.
func statsFrame(subject, name string, kv ...string) string {
	s := "1\x00" + subject + "\x00" + name + "\x00"
	for _, f := range kv {
		s += f + "\x00"
	}
	return s + "\x00"
}

var fullStats = []string{
	"memory_kb", "409600", "memory_assigned_total", "419840", "memory_assigned_usable", "409600",
	"memory_with_swap_used", "204800", "cpu_time", "15320", "cpu_usage", "7", "online_vcpus", "2",
}

func TestParseQubeStats(t *testing.T) {
	kvs := func(kv ...string) []KV {
		var out []KV
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, KV{kv[i], kv[i+1]})
		}
		return out
	}
	withSwap := append(append([]string{}, fullStats...), "swap_used", "1024", "cpu_usage_internal", "0.5")
	for _, tc := range []struct {
		name string
		ev   Event
		want QubeStats
		err  string
	}{
		{name: "all keys", ev: Event{Subject: "work", Name: VMStatsEvent, Kwargs: kvs(fullStats...)}, want: QubeStats{
			Qube: "work", MemoryKB: 409600, MemoryAssignedTotal: 419840, MemoryAssignedUsable: 409600,
			MemoryWithSwapUsed: 204800, CPUTime: 15320, CPUUsage: 7, OnlineVCPUs: 2, Kwargs: kvs(fullStats...),
		}},
		{name: "optional keys", ev: Event{Subject: "work", Name: VMStatsEvent, Kwargs: kvs(withSwap...)}, want: QubeStats{
			Qube: "work", MemoryKB: 409600, MemoryAssignedTotal: 419840, MemoryAssignedUsable: 409600,
			MemoryWithSwapUsed: 204800, CPUTime: 15320, CPUUsage: 7, OnlineVCPUs: 2,
			SwapUsed: 1024, HasSwapUsed: true, Kwargs: kvs(withSwap...),
		}},
		{name: "other event", ev: Event{Subject: "work", Name: "domain-start"}, err: `event "domain-start"`},
		{name: "no qube", ev: Event{Name: VMStatsEvent, Kwargs: kvs(fullStats...)}, err: "without a qube"},
		{name: "missing key", ev: Event{Subject: "work", Name: VMStatsEvent, Kwargs: kvs(fullStats[2:]...)}, err: "has no memory_kb"},
		{name: "not a number", ev: Event{Subject: "work", Name: VMStatsEvent, Kwargs: append(kvs(fullStats[2:]...), KV{"memory_kb", "x"})},
			err: `memory_kb="x" is not an integer`},
		{name: "bad swap", ev: Event{Subject: "work", Name: VMStatsEvent, Kwargs: append(kvs(fullStats...), KV{"swap_used", ""})},
			err: `swap_used="" is not an integer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseQubeStats(tc.ev)
			if tc.err != "" {
				if !errors.Is(err, ErrMalformedReply) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("ParseQubeStats = %+v, %v; want an error about %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseQubeStats = %+v, %v;\nwant %+v", got, err, tc.want)
			}
		})
	}
}

func TestWatchStats(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dest   string
		stream string
		qubes  []string // the stats fn got, in order
		err    func(error) bool
	}{
		{name: "two qubes", dest: AdminVM,
			stream: statsFrame("", ConnectionEstablished) + statsFrame("sys-net", VMStatsEvent, fullStats...) + statsFrame("work", VMStatsEvent, fullStats...),
			qubes:  []string{"sys-net", "work"}, err: func(err error) bool { return err == nil }},
		{name: "one qube", dest: "work",
			stream: statsFrame("", ConnectionEstablished) + statsFrame("work", VMStatsEvent, fullStats...),
			qubes:  []string{"work"}, err: func(err error) bool { return err == nil }},
		{name: "refused", dest: "work", stream: "2\x00PermissionDenied\x00\x00\x00",
			err: func(err error) bool { return IsType(err, TypePermissionDenied) }},
		{name: "malformed event", dest: AdminVM,
			stream: statsFrame("", ConnectionEstablished) + statsFrame("work", VMStatsEvent, fullStats...) + statsFrame("work", VMStatsEvent, "memory_kb", "x"),
			qubes:  []string{"work"}, err: func(err error) bool { return errors.Is(err, ErrMalformedReply) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req string
			s := newFakeServer(t, func(conn *net.UnixConn) {
				b, _ := readRequest(conn)
				req = string(b)
				conn.Write([]byte(tc.stream))
			})
			var got []string
			err := New(s.path).WatchStats(context.Background(), tc.dest, func(st QubeStats) error {
				got = append(got, st.Qube)
				if st.MemoryKB != 409600 || st.OnlineVCPUs != 2 {
					t.Errorf("stats of %s: %+v", st.Qube, st)
				}
				return nil
			})
			if want := "admin.vm.Stats+ dom0 name " + tc.dest + "\x00"; req != want {
				t.Errorf("request %q, want %q", req, want)
			}
			if !tc.err(err) || !reflect.DeepEqual(got, tc.qubes) {
				t.Errorf("WatchStats = %v after %v; want %v", err, got, tc.qubes)
			}
		})
	}
}

func TestWatchStatsCallbackError(t *testing.T) {
	s := newFakeServer(t, replyWith(func([]byte) []byte {
		return []byte(statsFrame("", ConnectionEstablished) + statsFrame("a", VMStatsEvent, fullStats...) + statsFrame("b", VMStatsEvent, fullStats...))
	}))
	stop := errors.New("enough")
	n := 0
	err := New(s.path).WatchStats(context.Background(), AdminVM, func(QubeStats) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("WatchStats = %v after %d calls; want the callback's error after 1", err, n)
	}
}
