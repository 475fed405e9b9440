// Command qubesd-bench drives a real qubesd through its socket and prints
// one line per measurement, "BENCH <name> <value> <unit>", for `make bench`.
//
// For stores of 10, 100 and 1000 qubes it measures: cold start to a
// socket that answers; admin.vm.property.Get latency (p50, p99) and, in the
// same run, the same client against a trivial unix-socket server that only
// echoes a fixed reply (the floor, and the ratio to it); and at 1000 qubes:
// admin.vm.List, the Go qvm-ls end to end, the daemon's resident memory
// after listing, and durable property writes by 1 and by 32 writers.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/core/store"
	"github.com/qubesgo/qubesd/sdk/admin"
)

func main() {
	bin := flag.String("bin", "bin", "directory with the qubesd and qvm binaries")
	sizes := flag.String("sizes", "10,100,1000", "store sizes (number of app qubes)")
	calls := flag.Int("calls", 5000, "property.Get calls per latency measurement")
	floor := flag.String("floor", "", "internal: serve the floor server on this socket")
	flag.Parse()
	if *floor != "" {
		// serves until its listener fails
		fmt.Fprintln(os.Stderr, "qubesd-bench floor:", serveFloor(*floor))
		os.Exit(1)
	}
	b := &bench{bin: *bin, calls: *calls}
	if err := b.run(strings.Split(*sizes, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "qubesd-bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	bin   string
	calls int
}

func report(name string, value float64, unit string) {
	fmt.Printf("BENCH %s %.3f %s\n", name, value, unit)
}

func (b *bench) run(sizes []string) error {
	floor, stop, err := startFloorServer()
	if err != nil {
		return err
	}
	defer stop()
	for _, s := range sizes {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil {
			return fmt.Errorf("bad size %q", s)
		}
		if err := b.size(n, floor); err != nil {
			return fmt.Errorf("%d qubes: %w", n, err)
		}
	}
	return nil
}

// size runs every measurement against a daemon with an n-qube store.
func (b *bench) size(n int, floor string) error {
	dir, err := os.MkdirTemp("", "qubesd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg, sock, err := prepare(dir, n)
	if err != nil {
		return err
	}
	t0 := time.Now()
	cmd := exec.Command(filepath.Join(b.bin, "qubesd"), "--config", cfg)
	cmd.Stderr, cmd.Stdout = nil, nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	c := admin.New(sock)
	ctx := context.Background()
	for {
		if _, err := c.Call(ctx, "admin.vm.List", "dom0", "", nil); err == nil {
			break
		}
		if time.Since(t0) > 30*time.Second {
			return fmt.Errorf("qubesd did not answer within 30 s")
		}
		time.Sleep(200 * time.Microsecond)
	}
	report(fmt.Sprintf("cold_start_n%d", n), ms(time.Since(t0)), "ms")

	get := func(c *admin.Client) (p50, p99 time.Duration, err error) {
		lat := make([]time.Duration, b.calls)
		for i := range lat {
			t := time.Now()
			if _, err := c.Call(ctx, "admin.vm.property.Get", "vm0001", "memory", nil); err != nil {
				return 0, 0, err
			}
			lat[i] = time.Since(t)
		}
		return percentile(lat, 50), percentile(lat, 99), nil
	}
	fp50, fp99, err := get(admin.New(floor))
	if err != nil {
		return fmt.Errorf("floor server: %w", err)
	}
	p50, p99, err := get(c)
	if err != nil {
		return err
	}
	report(fmt.Sprintf("property_get_p50_n%d", n), us(p50), "us")
	report(fmt.Sprintf("property_get_p99_n%d", n), us(p99), "us")
	report(fmt.Sprintf("floor_p50_n%d", n), us(fp50), "us")
	report(fmt.Sprintf("floor_p99_n%d", n), us(fp99), "us")
	report(fmt.Sprintf("property_get_p50_vs_floor_n%d", n), float64(p50)/float64(fp50), "x")

	if n < 1000 {
		return nil
	}
	lat := make([]time.Duration, 50)
	for i := range lat {
		t := time.Now()
		if _, err := c.Call(ctx, "admin.vm.List", "dom0", "", nil); err != nil {
			return err
		}
		lat[i] = time.Since(t)
	}
	report(fmt.Sprintf("vm_list_p50_n%d", n), ms(percentile(lat, 50)), "ms")

	qvmLs := filepath.Join(b.bin, "qvm-ls")
	if _, err := os.Stat(qvmLs); err == nil {
		runs := make([]time.Duration, 7)
		for i := range runs {
			ls := exec.Command(qvmLs)
			ls.Env = append(os.Environ(), "QUBESD_SOCKET="+sock)
			t := time.Now()
			out, err := ls.Output()
			if err != nil {
				return fmt.Errorf("qvm-ls: %v", err)
			}
			runs[i] = time.Since(t)
			if lines := strings.Count(string(out), "\n"); lines < n {
				return fmt.Errorf("qvm-ls listed %d lines, want more than %d", lines, n)
			}
		}
		report(fmt.Sprintf("qvm_ls_p50_n%d", n), ms(percentile(runs, 50)), "ms")
	} else {
		fmt.Fprintf(os.Stderr, "qubesd-bench: %s not built; skipping the qvm-ls measurement\n", qvmLs)
	}
	// every qube's properties once, as a GUI listing does
	for i := 1; i <= n; i++ {
		if _, err := c.Call(ctx, "admin.vm.property.GetAll", fmt.Sprintf("vm%04d", i), "", nil); err != nil {
			return err
		}
	}
	if rss, err := rssMiB(cmd.Process.Pid); err == nil {
		report(fmt.Sprintf("daemon_rss_after_listing_n%d", n), rss, "MiB")
	}
	one := writers(c, 1, 2*time.Second)
	many := writers(c, 32, 2*time.Second)
	report(fmt.Sprintf("durable_set_1_writer_n%d", n), one, "ops/s")
	report(fmt.Sprintf("durable_set_32_writers_n%d", n), many, "ops/s")
	report(fmt.Sprintf("durable_set_32_vs_1_n%d", n), many/one, "x")
	return nil
}

// prepare writes an n-qube store and a config into dir.
func prepare(dir string, n int) (cfgPath, sock string, err error) {
	data := filepath.Join(dir, "data")
	if err := qubestest.MakeDataDir(data); err != nil {
		return "", "", err
	}
	xml := qubestest.Mapped(store.Encode(store.GenerateDocument(n)), data)
	if err := os.WriteFile(filepath.Join(data, "qubes.xml"), xml, 0o660); err != nil {
		return "", "", err
	}
	cfg := fmt.Sprintf("[daemon]\ndata_dir = %q\nrun_dir = %q\nlog_level = \"warn\"\n", data, dir)
	cfgPath = filepath.Join(dir, "qubesd.toml")
	return cfgPath, filepath.Join(dir, "qubesd.sock"), os.WriteFile(cfgPath, []byte(cfg), 0o644)
}

// writers runs k goroutines setting a property durably for d and returns
// the total completed writes per second.
func writers(c *admin.Client, k int, d time.Duration) float64 {
	ctx := context.Background()
	deadline := time.Now().Add(d)
	done := make(chan int, k)
	for w := range k {
		go func() {
			ops := 0
			for i := 0; time.Now().Before(deadline); i++ {
				vm := fmt.Sprintf("vm%04d", w%1000+1)
				if _, err := c.Call(ctx, "admin.vm.property.Set", vm, "memory", []byte(fmt.Sprint(400+i%100))); err != nil {
					fmt.Fprintln(os.Stderr, "qubesd-bench: set:", err)
					break
				}
				ops++
			}
			done <- ops
		}()
	}
	total := 0
	for range k {
		total += <-done
	}
	return float64(total) / d.Seconds()
}
