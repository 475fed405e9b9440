package plugintests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/pluginhost"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// TestCommitSurvivesSIGKILL: the file-reflink plugin is SIGKILLed at a
// random point of a commit (Stop of a started save_on_stop volume), 50
// times. After every kill the committed image is either the old content
// or the new one, never a mix, and when it is still the old one the new
// content is still there to commit: a retried Stop commits it.
func TestCommitSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 50 plugin kills and restarts take a while")
	}
	// Restarts at once: 50 kills would otherwise climb the backoff to 30 s.
	h, d := startHost(t, "qubesd-pool-file-reflink", "", pluginhost.Options{MaxBackoff: 50 * time.Millisecond})
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "pool")
	p := pool.Pool{Name: "crash", Config: map[string]string{"dir_path": dir, "setup_check": "False"}} // ext4 here: the copy path
	v := pool.Volume{VID: "appvms/crash/private", Name: "private", Size: 8 << 20, RW: true, SaveOnStop: true, RevisionsToKeep: 1}
	if err := d.Setup(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, p, v); err != nil {
		t.Fatal(err)
	}
	clean := filepath.Join(dir, v.VID+".img")
	dirty := filepath.Join(dir, v.VID+"-dirty.img")

	// How long an undisturbed commit takes, to spread the kills over it.
	content := func(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8), 0x5a, 0xa5}, int(v.Size)/4) }
	dev := start(t, d, p, v)
	write(t, dev, content(0))
	t0 := time.Now()
	if err := d.Stop(ctx, p, v); err != nil {
		t.Fatal(err)
	}
	window := time.Since(t0) * 3 / 2

	old := sum(t, clean)
	kills := 0
	for i := 1; i <= 50; i++ {
		dev := start(t, d, p, v)
		next := content(i)
		write(t, dev, next)
		want := sha256.Sum256(next)

		pid := h.Status()[0].PID
		done := make(chan error, 1)
		go func() { done <- d.Stop(ctx, p, v) }()
		time.Sleep(time.Duration(rand.Int64N(int64(window) + 1)))
		kill(t, pid, syscall.SIGKILL)
		stopErr := <-done
		waitFor(t, "the plugin to be back", func() bool {
			st := h.Status()[0]
			return st.State == pluginhost.Running && st.PID != 0 && st.PID != pid
		})
		kills++

		switch got := sum(t, clean); got {
		case want: // the commit finished before the kill
		case old: // it did not happen: the new content must still be there
			if stopErr == nil {
				t.Fatalf("kill %d: Stop succeeded but the old content is committed", i)
			}
			if sum(t, dirty) != want {
				t.Fatalf("kill %d: the commit did not happen and the new content is gone", i)
			}
			if err := d.Stop(ctx, p, v); err != nil {
				t.Fatalf("kill %d: retried Stop: %v", i, err)
			}
			if sum(t, clean) != want {
				t.Fatalf("kill %d: the retried Stop did not commit the new content", i)
			}
		default:
			t.Fatalf("kill %d: the committed image is neither the old nor the new content (Stop: %v)", i, stopErr)
		}
		old = want
	}
	t.Logf("%d kills during commits spread over %v", kills, window)
}

func start(t *testing.T, d pool.Driver, p pool.Pool, v pool.Volume) string {
	t.Helper()
	dev, err := d.Start(context.Background(), p, v)
	if err != nil {
		t.Fatal(err)
	}
	return dev.Path
}

// write replaces the started image's content, as a qube would, and syncs.
func write(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteAt(b, 0)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// sum is the SHA-256 of a file's content (zero for a missing file).
func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return [32]byte{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
