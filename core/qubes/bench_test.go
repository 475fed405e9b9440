package qubes

import (
	"bytes"
	"testing"

	"github.com/qubesgo/qubesd/core/store"
)

// bench1000 returns the encoded bytes of a generated 1000-qube store and a
// data directory with its kernel.
func bench1000(b *testing.B) ([]byte, Options) {
	b.Helper()
	doc := store.GenerateDocument(1000)
	dir := testDataDir(b)
	raw := bytes.ReplaceAll(store.Encode(doc), []byte(refDataDir), []byte(dir))
	return raw, testOptions(dir)
}

// BenchmarkLoad1000 measures what start-up costs for 1000 qubes: decoding
// qubes.xml and building the model.
func BenchmarkLoad1000(b *testing.B) {
	raw, opts := bench1000(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		doc, err := store.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		a, rep, err := Load(doc, opts)
		if err != nil || len(rep.Quarantined) > 0 || a.Len() != len(doc.Domains) {
			b.Fatalf("load: %v, %d quarantined, %d qubes", err, len(rep.Quarantined), a.Len())
		}
	}
}

// BenchmarkSaveDocument1000 measures rendering the model and encoding it —
// the in-memory part of a save (core/store benchmarks the disk part).
func BenchmarkSaveDocument1000(b *testing.B) {
	raw, opts := bench1000(b)
	doc, _ := store.Decode(raw)
	a, _, err := Load(doc, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		_ = a.Read(func() error { store.EncodeTo(&buf, a.Document()); return nil })
	}
}

// BenchmarkPropertyGet reads properties by name from a qube of a 1000-qube
// model: an explicit value, a constant default, and a default inherited from
// the template.
func BenchmarkPropertyGet(b *testing.B) {
	raw, opts := bench1000(b)
	doc, _ := store.Decode(raw)
	a, _, err := Load(doc, opts)
	if err != nil {
		b.Fatal(err)
	}
	q, err := a.Qube("vm0500")
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"label", "include_in_backups", "memory", "netvm", "ip"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.mu.RLock()
				_, err := q.Get(name)
				a.mu.RUnlock()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
