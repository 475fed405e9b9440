package pooltest

import (
	"bytes"
	"io"
	"os"
)

// The suite's data: a marker (a short string) written at the start of a
// volume, and read back; a volume of zeros reads as "". A second copy at
// markerTail checks that data past the first block survives too.

const (
	markerLen = 64
	// markerTail is the offset of the marker's second copy.
	markerTail = Size / 2
)

func (e *env) write(path, marker string) {
	e.t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	e.ok(err, "opening "+path+" for writing")
	defer f.Close()
	buf := make([]byte, markerLen)
	copy(buf, marker)
	for _, off := range []int64{0, markerTail} {
		if _, err := f.WriteAt(buf, off); err != nil {
			e.t.Fatalf("writing %s at %d: %v", path, off, err)
		}
	}
	e.ok(f.Sync(), "syncing "+path)
	e.ok(f.Close(), "closing "+path)
}

// read returns the marker at the start of path ("" for zeros); it fails
// the test if the copy at markerTail differs.
func (e *env) read(path string) string {
	e.t.Helper()
	f, err := os.Open(path)
	e.ok(err, "opening "+path)
	defer f.Close()
	var got [2]string
	for i, off := range []int64{0, markerTail} {
		buf := make([]byte, markerLen)
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			e.t.Fatalf("reading %s at %d: %v", path, off, err)
		}
		got[i] = string(bytes.TrimRight(buf, "\x00"))
	}
	if got[0] != got[1] {
		e.t.Fatalf("%s: marker %q at 0 but %q at %d: data lost past the first block", path, got[0], got[1], markerTail)
	}
	return got[0]
}

// size is the size of a file or block device, by seeking to its end.
func (e *env) size(path string) int64 {
	e.t.Helper()
	f, err := os.Open(path)
	e.ok(err, "opening "+path)
	defer f.Close()
	n, err := f.Seek(0, io.SeekEnd)
	e.ok(err, "seeking to the end of "+path)
	return n
}

// zeroAt reports whether the bytes of path at off are zeros (or past its end).
func (e *env) zeroAt(path string, off int64) bool {
	e.t.Helper()
	f, err := os.Open(path)
	e.ok(err, "opening "+path)
	defer f.Close()
	buf := make([]byte, markerLen)
	n, err := f.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		e.t.Fatalf("reading %s at %d: %v", path, off, err)
	}
	return bytes.Count(buf[:n], []byte{0}) == n
}

// headLen is how much of a read-only device the suite compares.
const headLen = 4096

// head returns the first headLen bytes of path (fewer if it is shorter):
// what the suite compares to tell that a read-only device's content did
// not change.
func (e *env) head(path string) string {
	e.t.Helper()
	f, err := os.Open(path)
	e.ok(err, "opening "+path+" for reading")
	defer f.Close()
	buf := make([]byte, headLen)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		e.t.Fatalf("reading %s: %v", path, err)
	}
	return string(buf[:n])
}
