package lifecycle

import (
	"sync"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/vmm"
)

const mib = 1 << 20

// memoryRequest is what a start asks of the host (spec §4.6, as qmemman's
// request): the qube's memory, 4 MiB, 1.5 MiB per vCPU, and for other than
// pv the page tables of its largest memory (8 KiB per MiB).
func memoryRequest(cfg vmm.DomainConfig) uint64 {
	mem := uint64(max(cfg.MemoryMiB, 0))
	need := mem*mib + 4*mib + uint64(max(cfg.VCPUs, 0))*3*mib/2
	if cfg.VirtMode != "pv" {
		need += uint64(max(cfg.MaxMemMiB, cfg.MemoryMiB, 0)) * 8192
	}
	return need
}

// reserveMemory checks the host's free memory against need, less what the
// starts between their own check and their domain's creation have
// reserved, and reserves need until release (idempotent) is called. Without
// a FreeMemory source there is no check. A free-memory figure that cannot
// be read does not block a start: it is logged.
func (m *Manager) reserveMemory(q *qubes.Qube, need uint64) (release func(), err error) {
	if m.opts.FreeMemory == nil {
		return func() {}, nil
	}
	free, err := m.opts.FreeMemory()
	if err != nil {
		m.log.Warn("cannot read the host's free memory; starting without the memory check", "qube", q.Name(), "error", err)
		return func() {}, nil
	}
	m.mu.Lock()
	avail := free - min(free, m.reserved)
	if need > avail {
		m.mu.Unlock()
		return nil, qerr.New(qerr.MemoryError,
			"Not enough memory to start domain %s: it needs %d MiB, the host has %d MiB free (%d MiB of it held by other qubes being started); lower its memory property or stop other qubes",
			property.PyRepr(q.Name()), (need+mib-1)/mib, avail/mib, min(free, m.reserved)/mib)
	}
	m.reserved += need
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			m.reserved -= need
			m.mu.Unlock()
		})
	}, nil
}
