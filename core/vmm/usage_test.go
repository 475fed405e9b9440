package vmm

import (
	"testing"
	"time"
)

func TestSamplerCPUUsage(t *testing.T) {
	c, _ := openTest(t)
	const name = "vmm-sampler"
	defineTest(t, c, name)
	if err := c.CreatePaused(name); err != nil {
		t.Fatal(err)
	}

	clock := time.Unix(1000, 0)
	s := c.NewSampler(name)
	s.now = func() time.Time { return clock }
	first, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0].Name != name || first[0].CPUUsageRaw != 0 {
		t.Fatalf("first sample: %+v, want one entry for %s with no CPU use yet", first, name)
	}

	// pretend the domain used 1.5 s of CPU over 2 s of wall time
	s.prev[name] = first[0].CPUTimeNs - 1_500_000_000
	s.prevAt = clock
	clock = clock.Add(2 * time.Second)
	second, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	cpuDelta := second[0].CPUTimeNs - (first[0].CPUTimeNs - 1_500_000_000)
	wantRaw := int((float64(cpuDelta) * 100 / 2 / 1e9) + 0.5)
	if second[0].CPUUsageRaw != wantRaw || second[0].CPUUsage != wantRaw/second[0].VCPUs {
		t.Errorf("second sample: raw %d, per vCPU %d (%d vCPUs); want %d, %d", second[0].CPUUsageRaw, second[0].CPUUsage, second[0].VCPUs, wantRaw, wantRaw/second[0].VCPUs)
	}

	// a restart (CPU time going backwards) reads as no use, not a negative one
	s.prev[name] = second[0].CPUTimeNs + 1_000_000_000
	clock = clock.Add(time.Second)
	third, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if third[0].CPUUsageRaw != 0 {
		t.Errorf("after a restart: raw %d, want 0", third[0].CPUUsageRaw)
	}

	if err := c.Destroy(name); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Sample(); err != nil || len(got) != 0 {
		t.Errorf("inactive domain: %+v, %v; want nothing", got, err)
	}
	if _, err := c.NewSampler("vmm-sampler-unknown").Sample(); err == nil {
		t.Error("sampling an unknown domain: no error")
	}
}
