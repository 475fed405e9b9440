package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func percentile(lat []time.Duration, p int) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	i := len(s) * p / 100
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

// rssMiB reads a process's resident set size.
func rssMiB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// startFloorServer runs the floor server in a child process (this binary
// with -floor SOCKET), so that it pays the same cross-process costs as the
// daemon it is compared with.
func startFloorServer() (string, func(), error) {
	dir, err := os.MkdirTemp("", "qubesd-bench-floor-")
	if err != nil {
		return "", nil, err
	}
	sock := filepath.Join(dir, "floor.sock")
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(self, "-floor", sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock, stop, nil
		}
		if time.Since(start) > 10*time.Second {
			stop()
			return "", nil, fmt.Errorf("the floor server did not start")
		}
	}
}

// serveFloor is the floor server: it reads each request to EOF and answers
// a fixed property.Get reply — the cost of the transport alone.
func serveFloor(sock string) error {
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	reply := []byte("0\x00default=True type=int 400")
	for {
		conn, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer conn.Close()
			_, _ = io.Copy(io.Discard, conn)
			_, _ = conn.Write(reply)
		}()
	}
}
