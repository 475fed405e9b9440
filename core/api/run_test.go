package api

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
)

// recCommitter records the versions it is asked to make durable.
type recCommitter struct {
	mu       sync.Mutex
	versions []uint64
	err      error
}

func (r *recCommitter) Commit(_ context.Context, v uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions = append(r.versions, v)
	return r.err
}

// TestRunMethod: Prepare, then the permission event (with Prepare's
// kwargs) under the read lock, then Run with no lock held; the version Run
// returns is committed before the reply, 0 is not.
func TestRunMethod(t *testing.T) {
	tests := []struct {
		name       string
		prepareErr error
		permErr    error
		runErr     error
		write      bool // Run changes the model
		commitErr  error
		want       string
		wantSteps  []string
		wantCommit bool
	}{
		{name: "read", want: "0\x00body", wantSteps: []string{"prepare", "perm", "run"}},
		{name: "write", write: true, want: "0\x00body", wantSteps: []string{"prepare", "perm", "run"}, wantCommit: true},
		{name: "prepare refuses", prepareErr: qerr.New(qerr.ProtocolError, "bad payload"), want: "2\x00ProtocolError\x00\x00bad payload\x00", wantSteps: []string{"prepare"}},
		{name: "permission refuses", permErr: qerr.New(qerr.PermissionDenied, "no"), want: "2\x00PermissionDenied\x00\x00no\x00", wantSteps: []string{"prepare", "perm"}},
		{name: "run fails after a change", write: true, runErr: qerr.New(qerr.StoragePoolError, "driver said no"), want: "2\x00StoragePoolException\x00\x00driver said no\x00", wantSteps: []string{"prepare", "perm", "run"}, wantCommit: true},
		{name: "commit fails", write: true, commitErr: errors.New("disk full"), want: "2\x00QubesException\x00\x00the change was made but could not be saved: disk full\x00", wantSteps: []string{"prepare", "perm", "run"}, wantCommit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app, _ := newModel(t, 1)
			com := &recCommitter{err: tt.commitErr}
			s := New(Options{App: app, Committer: com})
			var steps []string
			var gotKW any
			app.Bus().Subscribe("admin-permission:test.Run", events.Core, func(e *events.Event) error {
				steps = append(steps, "perm")
				gotKW, _ = e.Arg("extra")
				return tt.permErr
			})
			var wrote uint64
			s.methods.add(&Method{Name: "test.Run", Arg: Optional, Payload: Optional,
				Prepare: func(ctx context.Context, c *Call) error {
					steps = append(steps, "prepare")
					c.Perm = []events.KV{{Key: "extra", Value: "x"}}
					return tt.prepareErr
				},
				Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
					steps = append(steps, "run")
					// no lock is held: taking the write lock must not
					// deadlock
					v, err := c.App.Write(func() error { return nil })
					if err != nil {
						t.Fatal(err)
					}
					if tt.write {
						wrote = v
					}
					return []byte("body"), wrote, tt.runErr
				}})
			got := string(s.Call(context.Background(), wire("test.Run", "", "dom0", "dom0", "")))
			if got != tt.want {
				t.Errorf("reply %q, want %q", got, tt.want)
			}
			if !slices.Equal(steps, tt.wantSteps) {
				t.Errorf("steps %v, want %v", steps, tt.wantSteps)
			}
			if len(steps) > 1 && gotKW != "x" {
				t.Errorf("permission kwarg extra = %v, want x", gotKW)
			}
			want := []uint64(nil)
			if tt.wantCommit {
				want = []uint64{wrote}
			}
			if !slices.Equal(com.versions, want) {
				t.Errorf("committed %v, want %v", com.versions, want)
			}
		})
	}
}
