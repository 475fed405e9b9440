package api

import (
	"context"
	"strconv"
	"time"

	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/vmm"
)

// admin.vm.Stats (spec admin-api §1.7): after connection-established, every
// stats_interval seconds, one vm-stats event per running qube (dest dom0)
// or for the destination qube only. The figures come from libvirt (the
// reference's non-Xen path): memory assigned and usable are the domain's
// maximum and current memory, and the memory with swap is the current
// memory, since only the guest's meminfo writer (not run here) knows more.
// Domains that are not qubes of this model are not reported.

func streamStats(ctx context.Context, c *Call, send func([]byte) error) error {
	lc := c.Server.opts.Lifecycle
	if lc == nil {
		return qerr.New(qerr.Exception, "qube lifecycle is not configured (no libvirt connection): no statistics")
	}
	var only *qubes.Qube
	if !c.Dest.IsAdminVM() {
		only = c.Dest
		if s := lc.PowerState(only); s == string(vmm.Halted) || s == string(vmm.NA) {
			return qubes.NotRunningError(only.Name())
		}
	}
	sampler := lc.NewSampler(only)
	if err := send([]byte("1\x00\x00connection-established\x00\x00")); err != nil {
		return err
	}
	for {
		usage, err := sampler.Sample()
		if err != nil {
			return qerr.Wrap(qerr.Exception, err, "reading domain statistics: %v", err)
		}
		var frames [][]byte
		interval := 3
		_ = c.App.Read(func() error {
			if v, err := c.App.Get("stats_interval"); err == nil {
				if n, ok := v.(int); ok && n > 0 {
					interval = n
				}
			}
			for _, u := range usage {
				if _, err := c.App.Qube(u.Name); err == nil {
					frames = append(frames, statsFrame(u))
				}
			}
			return nil
		})
		for _, f := range frames {
			if err := send(f); err != nil {
				return err
			}
		}
		t := time.NewTimer(time.Duration(interval) * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// statsFrame is one vm-stats event: the reference's keys, in its order.
func statsFrame(u vmm.Usage) []byte {
	b := []byte("1\x00" + u.Name + "\x00vm-stats\x00")
	kv := func(k string, v uint64) {
		b = append(b, k...)
		b = append(b, 0)
		b = strconv.AppendUint(b, v, 10)
		b = append(b, 0)
	}
	kv("memory_kb", u.MemKiB)
	kv("memory_assigned_total", u.MaxMemKiB)
	kv("memory_assigned_usable", u.MemKiB)
	kv("memory_with_swap_used", u.MemKiB)
	kv("cpu_time", u.CPUTimeNs/1_000_000)
	kv("cpu_usage", uint64(max(u.CPUUsage, 0)))
	kv("online_vcpus", uint64(max(u.VCPUs, 0)))
	return append(b, 0)
}
