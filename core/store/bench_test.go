package store

import "testing"

func BenchmarkDecode1000(b *testing.B) {
	data := Encode(GenerateDocument(1000))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode1000(b *testing.B) {
	doc := GenerateDocument(1000)
	b.SetBytes(int64(len(Encode(doc))))
	b.ReportAllocs()
	for b.Loop() {
		Encode(doc)
	}
}

func BenchmarkSave1000(b *testing.B) {
	s, err := Open(b.TempDir()+"/qubes.xml", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	doc := GenerateDocument(1000)
	b.SetBytes(int64(len(Encode(doc))))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Save(doc); err != nil {
			b.Fatal(err)
		}
	}
}
