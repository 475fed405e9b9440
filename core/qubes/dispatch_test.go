package qubes

import (
	"errors"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/qerr"
)

// An extension called while the model is locked calls back on another
// goroutine: under the live dispatch id it runs inside the holder's lock
// instead of deadlocking on it.
func TestCallbackInsideDispatchDoesNotDeadlock(t *testing.T) {
	a, _, _ := loadFixture(t)
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(func() error {
			q := qube(t, a, "vm0001")
			id, end := a.BeginDispatch(true)
			defer end()
			// the "extension": another goroutine, calling back before answering
			answered := make(chan error)
			go func() {
				_, err := a.InDispatch(id, true, func() error { return q.Tags.Add("seen-by-extension") })
				answered <- err
			}()
			return <-answered
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: the callback waited for the lock its dispatcher holds")
	}
	_ = a.Read(func() error {
		if !qube(t, a, "vm0001").Tags.Has("seen-by-extension") {
			t.Error("the callback's change is missing")
		}
		return nil
	})
}

func TestDispatchRules(t *testing.T) {
	a, _, _ := loadFixture(t)
	var readID uint64
	_ = a.Read(func() error {
		id, end := a.BeginDispatch(false)
		defer end()
		readID = id
		if _, err := a.InDispatch(id, false, func() error { return nil }); err != nil {
			t.Errorf("a read inside a read dispatch: %v", err)
		}
		_, err := a.InDispatch(id, true, func() error { return nil })
		if qerr.KindOf(err) != qerr.PermissionDenied {
			t.Errorf("a write inside a read dispatch: %v, want PermissionDenied", err)
		}
		return nil
	})
	if _, err := a.InDispatch(readID, false, func() error { return nil }); err == nil {
		t.Error("a callback under a dispatch that is over was accepted")
	}
	// id 0: outside any dispatch, the callback takes the lock itself
	v, err := a.InDispatch(0, true, func() error { return qube(t, a, "vm0002").Tags.Add("later") })
	if err != nil || v == 0 {
		t.Errorf("a write outside a dispatch: version %d, %v", v, err)
	}
	want := errors.New("handler failed")
	if _, err := a.InDispatch(0, false, func() error { return want }); !errors.Is(err, want) {
		t.Errorf("the callback's error is lost: %v", err)
	}
}
