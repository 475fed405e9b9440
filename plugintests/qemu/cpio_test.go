package qemu

import (
	"bytes"
	"strconv"
	"testing"
)

// TestCpioNewc reads back what cpioWriter writes, following the newc
// layout the kernel's initramfs unpacker expects.
func TestCpioNewc(t *testing.T) {
	var buf bytes.Buffer
	w := &cpioWriter{w: &buf}
	w.dir("bin")
	w.file("bin/busybox", []byte("12345"), 0o755)
	w.symlink("bin/sh", "busybox")
	w.dev("dev/console", 5, 1, 0o600)
	w.file("init", []byte("#!/bin/sh\n"), 0o755)
	w.trailer()
	if w.err != nil {
		t.Fatal(w.err)
	}
	type entry struct {
		name, data   string
		mode, rmajor int
	}
	var got []entry
	b := buf.Bytes()
	field := func(h []byte, i int) int {
		v, err := strconv.ParseUint(string(h[6+8*i:6+8*i+8]), 16, 32)
		if err != nil {
			t.Fatal(err)
		}
		return int(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		if off%4 != 0 || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d: %q", off, b[off:min(off+6, len(b))])
		}
		h := b[off : off+110]
		size, namesize := field(h, 6), field(h, 11)
		name := string(b[off+110 : off+110+namesize-1])
		dataOff := align(off + 110 + namesize)
		got = append(got, entry{name, string(b[dataOff : dataOff+size]), field(h, 1), field(h, 9)})
		off = align(dataOff + size)
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			break
		}
	}
	want := []entry{
		{"bin", "", sIFDIR | 0o755, 0},
		{"bin/busybox", "12345", sIFREG | 0o755, 0},
		{"bin/sh", "busybox", sIFLNK | 0o777, 0},
		{"dev/console", "", sIFCHR | 0o600, 5},
		{"init", "#!/bin/sh\n", sIFREG | 0o755, 0},
		{"TRAILER!!!", "", 0, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"6.1.0-9-cloud-amd64", "6.1.0-56-cloud-amd64", true},
		{"6.1.0-56-cloud-amd64", "6.1.0-9-cloud-amd64", false},
		{"6.1.0-56-cloud-amd64", "6.12.0-1-cloud-amd64", true},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
