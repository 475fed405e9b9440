package vmm

import (
	"math"
	"time"
)

// Usage is one domain's resources at a sample, with its CPU use since the
// previous sample (admin.vm.Stats).
type Usage struct {
	DomainStats
	// CPUUsageRaw is the CPU time used since the previous sample, in
	// percent of one CPU (100 = one CPU busy); 0 at the first sample of a
	// domain and after it restarted. CPUUsage is that per online vCPU.
	CPUUsageRaw, CPUUsage int
}

// Sampler samples domains' resource use at intervals, remembering the
// previous sample to compute CPU use, as the reference's get_vm_stats does.
// It is not safe for concurrent use.
type Sampler struct {
	conn   *Conn
	only   string
	prev   map[string]uint64 // CPU time (ns) by domain at prevAt
	prevAt time.Time
	now    func() time.Time
}

// NewSampler samples every active domain, or only the domain named only.
func (c *Conn) NewSampler(only string) *Sampler {
	return &Sampler{conn: c, only: only, now: time.Now}
}

// Sample reads the active domains' resources (or the one domain's, which
// must exist; an inactive one yields no Usage).
func (s *Sampler) Sample() ([]Usage, error) {
	var stats []DomainStats
	if s.only != "" {
		st, err := s.conn.Stats(s.only)
		if err != nil {
			return nil, err
		}
		if st.State != Halted {
			stats = []DomainStats{st}
		}
	} else {
		var err error
		if stats, err = s.conn.AllStats(); err != nil {
			return nil, err
		}
	}
	now := s.now()
	out := make([]Usage, len(stats))
	cur := make(map[string]uint64, len(stats))
	for i, st := range stats {
		out[i].DomainStats = st
		cur[st.Name] = st.CPUTimeNs
		prev, ok := s.prev[st.Name]
		if !ok || st.CPUTimeNs < prev || !now.After(s.prevAt) {
			continue // first sample, or the domain restarted
		}
		secs := now.Sub(s.prevAt).Seconds()
		out[i].CPUUsageRaw = int(math.Round(float64(st.CPUTimeNs-prev) * 100 / secs / 1e9))
		if st.VCPUs > 0 {
			out[i].CPUUsage = out[i].CPUUsageRaw / st.VCPUs
		}
	}
	s.prev, s.prevAt = cur, now
	return out, nil
}
