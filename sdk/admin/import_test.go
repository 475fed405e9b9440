package admin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteImport(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vol.img")
	const size = 3*importBlock + 100
	orig := bytes.Repeat([]byte{0xff}, size+10)
	data := make([]byte, size)
	for i := range importBlock {
		data[i] = byte(i%251 + 1)
	}
	copy(data[2*importBlock:], "tail")
	// block 1 and most of block 3 are zeros: they are seeked over, so the
	// old bytes stay (the daemon hands out a fresh, sparse volume)
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteImport(context.Background(), path, bytes.NewReader(data), size, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if len(got) != size+10 {
		t.Fatalf("the file was truncated or extended: %d bytes", len(got))
	}
	if !bytes.Equal(got[:importBlock], data[:importBlock]) || !bytes.Equal(got[2*importBlock:2*importBlock+4], []byte("tail")) {
		t.Error("data blocks not written")
	}
	if !bytes.Equal(got[importBlock:2*importBlock], orig[:importBlock]) {
		t.Error("an all-zero block was written, not skipped")
	}

	err := WriteImport(context.Background(), path, strings.NewReader("abc"), 5, nil)
	if err == nil || err.Error() != "not enough data (copied 3 bytes, expected 5 bytes)" {
		t.Errorf("short input: %v", err)
	}
	err = WriteImport(context.Background(), path, strings.NewReader("abcdef"), 5, nil)
	if err == nil || err.Error() != "too much data (expected 5 bytes)" {
		t.Errorf("long input: %v", err)
	}
	err = WriteImport(context.Background(), filepath.Join(dir, "missing"), strings.NewReader("abc"), 3, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "error copying data: ") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("the volume file was created")
	}
}

func TestParseImportBegin(t *testing.T) {
	tests := []struct {
		body string
		size int64
		path string
		ok   bool
	}{
		{"1024 /var/lib/qubes/appvms/work/private-import.img", 1024, "/var/lib/qubes/appvms/work/private-import.img", true},
		{"0 /dev/qubes_dom0/vm-work-private-import", 0, "/dev/qubes_dom0/vm-work-private-import", true},
		{"1024", 0, "", false},
		{"-1 /x", 0, "", false},
		{"x /x", 0, "", false},
		{"10 ", 0, "", false},
	}
	for _, tt := range tests {
		size, path, err := ParseImportBegin([]byte(tt.body))
		if (err == nil) != tt.ok || size != tt.size || path != tt.path {
			t.Errorf("ParseImportBegin(%q) = %d, %q, %v", tt.body, size, path, err)
		}
		if err != nil && !errors.Is(err, ErrMalformedReply) {
			t.Errorf("ParseImportBegin(%q): %v is not ErrMalformedReply", tt.body, err)
		}
	}
	if got := string(ImportEndPayload(nil)); got != "ok" {
		t.Errorf("ImportEndPayload(nil) = %q", got)
	}
	if got := string(ImportEndPayload(errors.New("not enough data"))); got != "fail\nnot enough data" {
		t.Errorf("ImportEndPayload(err) = %q", got)
	}
}
