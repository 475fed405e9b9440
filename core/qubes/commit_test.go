package qubes

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/qubesgo/qubesd/core/store"
)

// openCommitted saves the fixture model into a fresh store and returns the
// model with a Committer on it.
func openCommitted(t testing.TB) (*App, *store.Store, *store.Committer) {
	t.Helper()
	a, _, _ := loadFixture(t)
	st, err := store.Open(filepath.Join(t.TempDir(), "qubes.xml"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := a.Snapshot()
	if err := st.Save(doc); err != nil {
		t.Fatal(err)
	}
	c := store.NewCommitter(st, a.Snapshot, nil)
	t.Cleanup(func() { _ = c.Close(); _ = st.Close() })
	return a, st, c
}

// TestGroupCommit: 32 writers change the model concurrently and each waits
// for its change to be durable; afterwards the file holds every change, and
// the writers shared saves.
func TestGroupCommit(t *testing.T) {
	a, st, c := openCommitted(t)
	before := c.Saves()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			name := fmt.Sprintf("vm%04d", i%10+1)
			v, err := a.Write(func() error {
				q, err := a.Qube(name)
				if err != nil {
					return err
				}
				return q.Features.Set(fmt.Sprintf("writer-%d", i), "1")
			})
			if err == nil {
				err = c.Commit(context.Background(), v)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if saves := c.Saves() - before; saves >= 32 {
		t.Errorf("32 writers caused %d saves; group commit should share them", saves)
	}
	doc, _, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, d := range doc.Domains {
		for _, f := range d.Features {
			if len(f.Name) > 7 && f.Name[:7] == "writer-" {
				found++
			}
		}
	}
	if found != 32 {
		t.Errorf("the saved store holds %d of the 32 acknowledged changes", found)
	}
}

// BenchmarkDurableSet measures a property change made durable, by one
// writer and by 32 concurrent writers (group commit).
func BenchmarkDurableSet(b *testing.B) {
	for _, writers := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			a, _, c := openCommitted(b)
			q, _ := a.Qube("vm0001")
			d, _ := q.Descriptor("memory")
			b.SetParallelism(writers)
			if writers == 1 {
				for i := 0; b.Loop(); i++ {
					v, _ := a.Write(func() error { return q.Set(d, 400+i%100) })
					if err := c.Commit(context.Background(), v); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					v, _ := a.Write(func() error { return q.Set(d, 400+i%100) })
					if err := c.Commit(context.Background(), v); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
