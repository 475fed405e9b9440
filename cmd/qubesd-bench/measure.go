package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// startFloorServer serves a unix socket that reads each request to EOF and
// answers a fixed property.Get reply: the cost of the transport alone.
func startFloorServer() (string, func(), error) {
	dir, err := os.MkdirTemp("", "qubesd-bench-floor-")
	if err != nil {
		return "", nil, err
	}
	sock := filepath.Join(dir, "floor.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return "", nil, err
	}
	reply := []byte("0\x00default=True type=int 400")
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(io.Discard, conn)
				_, _ = conn.Write(reply)
			}()
		}
	}()
	return sock, func() { l.Close(); os.RemoveAll(dir) }, nil
}
