package admin

import (
	"context"
	"fmt"
	"strconv"
)

// VMStatsEvent is the name of the events of an admin.vm.Stats stream.
const VMStatsEvent = "vm-stats"

// QubeStats is one vm-stats event of admin.vm.Stats: a running qube's
// memory and CPU use at one moment. Memory is in KiB.
type QubeStats struct {
	// Qube is the qube's name.
	Qube string
	// MemoryKB is the memory assigned and usable in the qube (the
	// reference marks it for deprecation in favour of
	// MemoryAssignedUsable).
	MemoryKB int64
	// MemoryAssignedTotal is all the memory assigned to the qube,
	// hypervisor overhead included.
	MemoryAssignedTotal int64
	// MemoryAssignedUsable is the part of it the qube can use.
	MemoryAssignedUsable int64
	// MemoryWithSwapUsed is the memory the qube says it uses, swap
	// included (the guest reports it: it can lie).
	MemoryWithSwapUsed int64
	// CPUTime is the CPU time the qube used since it started, in
	// milliseconds.
	CPUTime int64
	// CPUUsage is the qube's CPU use since the previous event, in percent
	// of its vCPUs.
	CPUUsage int
	// OnlineVCPUs is the number of vCPUs the qube has.
	OnlineVCPUs int

	// SwapUsed is the swap the qube says it uses; HasSwapUsed tells
	// whether the daemon sent it (it does when the guest reports it).
	SwapUsed    int64
	HasSwapUsed bool

	// Kwargs are all the event's keyword arguments, including those
	// above and the optional, implementation-specific ones
	// (cpu_time_internal, cpu_usage_internal, online_vcpus_internal).
	Kwargs []KV
}

// ParseQubeStats reads a vm-stats event. The seven keys every vm-stats
// event has must be there and be integers; swap_used is optional; other
// keys are only kept in Kwargs. The error names the event and the key.
func ParseQubeStats(ev Event) (QubeStats, error) {
	if ev.Name != VMStatsEvent {
		return QubeStats{}, fmt.Errorf("admin.vm.Stats: %w: event %q where %q was expected", ErrMalformedReply, ev.Name, VMStatsEvent)
	}
	if ev.Subject == "" {
		return QubeStats{}, fmt.Errorf("admin.vm.Stats: %w: vm-stats event without a qube", ErrMalformedReply)
	}
	s := QubeStats{Qube: ev.Subject, Kwargs: ev.Kwargs}
	var cpuUsage, vcpus int64
	for _, f := range []struct {
		key string
		dst *int64
	}{
		{"memory_kb", &s.MemoryKB},
		{"memory_assigned_total", &s.MemoryAssignedTotal},
		{"memory_assigned_usable", &s.MemoryAssignedUsable},
		{"memory_with_swap_used", &s.MemoryWithSwapUsed},
		{"cpu_time", &s.CPUTime},
		{"cpu_usage", &cpuUsage},
		{"online_vcpus", &vcpus},
	} {
		v, ok := ev.Lookup(f.key)
		if !ok {
			return QubeStats{}, fmt.Errorf("admin.vm.Stats: %w: vm-stats of %s has no %s", ErrMalformedReply, ev.Subject, f.key)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return QubeStats{}, fmt.Errorf("admin.vm.Stats: %w: vm-stats of %s: %s=%q is not an integer", ErrMalformedReply, ev.Subject, f.key, v)
		}
		*f.dst = n
	}
	s.CPUUsage, s.OnlineVCPUs = int(cpuUsage), int(vcpus)
	if v, ok := ev.Lookup("swap_used"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return QubeStats{}, fmt.Errorf("admin.vm.Stats: %w: vm-stats of %s: swap_used=%q is not an integer", ErrMalformedReply, ev.Subject, v)
		}
		s.SwapUsed, s.HasSwapUsed = n, true
	}
	return s, nil
}

// WatchStats subscribes to admin.vm.Stats on dest (AdminVM for every
// running qube, or one qube's name) and calls fn with each qube's
// statistics as they arrive: the daemon sends one event per running qube
// every stats_interval seconds (a global property). It is Stats with the
// events parsed; the connection-established frame is consumed, not passed
// to fn.
//
// WatchStats returns as Stats does: ctx.Err() when ctx is done, fn's error
// if fn fails, nil when the daemon ends the stream, *Error if the daemon
// refuses the subscription. An event that is not a well-formed vm-stats
// event ends the stream with an error wrapping ErrMalformedReply.
func (c *Client) WatchStats(ctx context.Context, dest string, fn func(QubeStats) error) error {
	return c.Stats(ctx, dest, func(ev Event) error {
		if ev.Name == ConnectionEstablished && ev.Subject == "" {
			return nil
		}
		s, err := ParseQubeStats(ev)
		if err != nil {
			return err
		}
		return fn(s)
	})
}
