package filepool

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// dmException is one chunk a store keeps: the origin's chunk old held data.
type dmException struct {
	old  uint64
	data []byte
}

// writeDMStore writes a persistent exception store as the kernel lays it
// out (dm-snap-persistent.c): the header in chunk 0, then per area a
// metadata chunk followed by its exceptions' data chunks.
func writeDMStore(t *testing.T, path string, sectors, valid uint32, exc []dmException) {
	t.Helper()
	chunk := int64(sectors) * 512
	perArea := chunk / 16
	f, err := os.Create(path)
	ok(t, err, "create")
	defer f.Close()
	le := binary.LittleEndian
	hdr := make([]byte, 16)
	le.PutUint32(hdr, dmSnapMagic)
	le.PutUint32(hdr[4:], valid)
	le.PutUint32(hdr[8:], dmSnapVersion)
	le.PutUint32(hdr[12:], sectors)
	_, err = f.WriteAt(hdr, 0)
	ok(t, err, "header")
	end := 2 * chunk // the header and the first (zeroed) area at least
	for i, e := range exc {
		area, idx := int64(i)/perArea, int64(i)%perArea
		meta := 1 + area*(perArea+1)
		data := meta + 1 + idx
		ent := make([]byte, 16)
		le.PutUint64(ent, e.old)
		le.PutUint64(ent[8:], uint64(data))
		_, err := f.WriteAt(ent, meta*chunk+idx*16)
		ok(t, err, "exception")
		buf := make([]byte, chunk)
		copy(buf, e.data)
		_, err = f.WriteAt(buf, data*chunk)
		ok(t, err, "data")
		end = max(end, (data+1)*chunk)
		if idx == perArea-1 { // a full area: the next one must read as zeros
			end = max(end, (meta+perArea+2)*chunk)
		}
	}
	ok(t, f.Truncate(end), "truncate")
}

func TestDMStore(t *testing.T) {
	const sectors = 8 // 4 KiB chunks: 256 exceptions an area
	const chunk = sectors * 512
	rng := rand.New(rand.NewPCG(1, 2))
	chunkData := func(tag byte) []byte {
		b := make([]byte, chunk)
		for i := range b {
			b[i] = tag ^ byte(rng.IntN(256))
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		nChunks int // the origin's size, in chunks
		nExc    int // how many chunks the store keeps
		zeros   bool
		partial int64 // bytes of the origin past its last whole chunk
	}{
		{"empty store", 16, 0, false, 0},
		{"one exception", 16, 1, false, 0},
		{"one area exactly", 300, 256, false, 0},
		{"two areas", 600, 300, false, 0},
		{"zero chunks become holes", 64, 10, true, 0},
		{"origin ends mid-chunk", 16, 16, false, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			size := int64(tc.nChunks)*chunk + tc.partial
			// before: the content the store stands for; img: after the
			// qube overwrote the chunks the store keeps.
			before, img := make([]byte, size), make([]byte, size)
			for c := range tc.nChunks {
				if !tc.zeros {
					copy(before[c*chunk:], chunkData(1))
				}
				copy(img[c*chunk:], before[c*chunk:(c+1)*chunk])
			}
			var exc []dmException
			for _, c := range rng.Perm(tc.nChunks)[:tc.nExc] {
				off := int64(c) * chunk
				exc = append(exc, dmException{uint64(c), bytes.Clone(before[off:min(off+chunk, size)])})
				copy(img[off:min(off+chunk, size)], chunkData(2))
			}
			if tc.partial > 0 {
				exc = append(exc, dmException{uint64(tc.nChunks), nil}) // the tail chunk was zeros
				copy(img[int64(tc.nChunks)*chunk:], chunkData(3))
			}
			storePath, imgPath := filepath.Join(dir, "cow"), filepath.Join(dir, "img")
			writeDMStore(t, storePath, sectors, 1, exc)
			ok(t, createSparse(imgPath, uint64(size), 0o600), "createSparse")
			for off := int64(0); off < size; off += chunk { // zero chunks stay holes
				if b := img[off:min(off+chunk, size)]; !isZero(b) {
					put(t, imgPath, off, string(b))
				}
			}

			k, err := classify(storePath)
			ok(t, err, "classify")
			if want := map[bool]cowKind{true: cowEmpty, false: cowDelta}[len(exc) == 0]; k != want {
				t.Errorf("classify: %v, want %v", k, want)
			}
			out := filepath.Join(dir, "out")
			_, err = copyFile(t.Context(), imgPath, out, copyOpts{size: -1, perm: 0o600, then: withDelta(cowDelta, storePath)})
			ok(t, err, "copy with the store put back")
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, before) {
				t.Errorf("image with the store put back differs from the content before")
			}
			if tc.zeros && used(t, out) > used(t, imgPath)/2 {
				t.Errorf("zero chunks put back take space: %d bytes (the overwritten image %d)", used(t, out), used(t, imgPath))
			}
		})
	}
}

func TestDMStoreRecognised(t *testing.T) {
	dir := t.TempDir()
	le := binary.LittleEndian
	header := func(magic, valid, version, sectors uint32) []byte {
		b := make([]byte, 256*kib)
		le.PutUint32(b, magic)
		le.PutUint32(b[4:], valid)
		le.PutUint32(b[8:], version)
		le.PutUint32(b[12:], sectors)
		return b
	}
	for _, tc := range []struct {
		name    string
		content []byte
		sparse  int64 // size of a sparse file instead
		want    cowKind
	}{
		{"absent", nil, -1, cowNone},
		{"sparse (the reference's create_sparse_file)", nil, 10 * mib, cowEmpty},
		{"EMPTY_SNAPSHOT", header(dmSnapMagic, 1, 1, 256), 0, cowEmpty},
		{"data", []byte("an ext4 file system, say"), 0, cowCopy},
		{"magic but version 2", header(dmSnapMagic, 1, 2, 256), 0, cowCopy},
		{"magic but odd chunk size", header(dmSnapMagic, 1, 1, 100), 0, cowCopy},
		{"magic but chunk size 0", header(dmSnapMagic, 1, 1, 0), 0, cowCopy},
		{"invalidated store, empty", header(dmSnapMagic, 0, 1, 256), 0, cowEmpty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			switch {
			case tc.sparse > 0:
				ok(t, createSparse(path, uint64(tc.sparse), 0o600), "createSparse")
			case tc.sparse == 0:
				ok(t, os.WriteFile(path, tc.content, 0o600), "write")
			}
			k, err := classify(path)
			ok(t, err, "classify")
			if k != tc.want {
				t.Errorf("classify: %v, want %v", k, tc.want)
			}
		})
	}
	// An invalidated store with exceptions cannot be put back.
	path := filepath.Join(dir, "invalid")
	writeDMStore(t, path, 8, 0, []dmException{{0, []byte("x")}})
	f, _ := os.Open(path)
	defer f.Close()
	s, err := openDMStore(f)
	if err != nil || s == nil {
		t.Fatalf("openDMStore of an invalidated store: %v, %v", s, err)
	}
	img, _ := os.Create(filepath.Join(dir, "img"))
	defer img.Close()
	if err := s.apply(img); err == nil {
		t.Error("apply of an invalidated store: no error")
	}
	// An exception pointing past the store's end is an error, not a panic.
	path = filepath.Join(dir, "corrupt")
	writeDMStore(t, path, 8, 1, []dmException{{0, []byte("x")}})
	raw, _ := os.ReadFile(path)
	le.PutUint64(raw[4096+8:], 1<<40)
	ok(t, os.WriteFile(path, raw, 0o600), "write")
	f2, _ := os.Open(path)
	defer f2.Close()
	s, _ = openDMStore(f2)
	img.Truncate(1 * mib)
	if err := s.apply(img); err == nil {
		t.Error("apply of a store whose exception points past its end: no error")
	}
}
