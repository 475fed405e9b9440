package admin

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestPools(t *testing.T) {
	c, r := newReplayServer(t)
	ctx := context.Background()
	pools, err := c.Pools(ctx)
	if err != nil || strings.Join(pools, ",") != "varlibqubes,linux-kernel" {
		t.Errorf("Pools = %v, %v", pools, err)
	}
	drivers, err := c.PoolDrivers(ctx)
	if err != nil || len(drivers) < 5 {
		t.Fatalf("PoolDrivers = %v, %v", drivers, err)
	}
	if d := drivers[1]; d.Name != "file" || !reflect.DeepEqual(d.Params, []string{"revisions_to_keep", "dir_path", "ephemeral_volatile"}) {
		t.Errorf("PoolDrivers[1] = %+v", d)
	}
	pi, err := c.PoolInfo(ctx, "varlibqubes")
	if err != nil {
		t.Fatal(err)
	}
	if pi.Name != "varlibqubes" || pi.Driver != "file-reflink" || pi.Size != 270553174016 || pi.Usage != 13497069568 || pi.IncludedIn != "" || len(pi.Fields) != 7 {
		t.Errorf("PoolInfo(varlibqubes) = %+v", pi)
	}
	if v, ok := pi.Get("dir_path"); !ok || v != "/var/lib/qubes" {
		t.Errorf("PoolInfo.Get(dir_path) = %q, %v", v, ok)
	}
	pi, err = c.PoolInfo(ctx, "linux-kernel")
	if err != nil || pi.Size != -1 || pi.Usage != -1 || pi.IncludedIn != "varlibqubes" {
		t.Errorf("PoolInfo(linux-kernel) = %+v, %v", pi, err)
	}
	if _, err := c.PoolInfo(ctx, "nosuchpool"); !IsType(err, TypePermissionDenied) {
		t.Errorf("PoolInfo(nosuchpool): %v", err)
	}
	u, err := c.PoolUsageDetails(ctx, "varlibqubes")
	if err != nil || u["data_size"] != 270553174016 || u["data_usage"] != 13497069568 || len(u) != 2 {
		t.Errorf("PoolUsageDetails = %v, %v", u, err)
	}
	if u, err := c.PoolUsageDetails(ctx, "linux-kernel"); err != nil || len(u) != 0 {
		t.Errorf("PoolUsageDetails(linux-kernel) = %v, %v", u, err)
	}
	vols, err := c.PoolVolumes(ctx, "linux-kernel")
	if err != nil || strings.Join(vols, ",") != "6.6.0-baseline" {
		t.Errorf("PoolVolumes = %v, %v", vols, err)
	}
	err = c.RemovePool(ctx, "varlibqubes")
	if !IsType(err, "QubesPoolInUseError") {
		t.Errorf("RemovePool(varlibqubes): %v", err)
	}
	if err := c.SetPoolRevisionsToKeep(ctx, "varlibqubes", 3); err != nil {
		t.Error(err)
	}
	if err := c.SetPoolEphemeralVolatile(ctx, "varlibqubes", true); err != nil {
		t.Error(err)
	}
	if err := c.SetPoolRevisionsToKeep(ctx, "varlibqubes", -2); !IsType(err, TypeProtocolError) {
		t.Errorf("SetPoolRevisionsToKeep(-2): %v", err)
	}
	if len(r.misses) > 0 {
		t.Errorf("unanswered requests: %v", r.misses)
	}
}

// recorder is a fake qubesd that answers every request with reply and
// keeps the requests.
type recorder struct {
	mu    sync.Mutex
	reqs  [][]byte
	reply []byte
}

func newRecorder(t *testing.T, reply string) (*Client, *recorder) {
	rec := &recorder{reply: []byte(reply)}
	s := newFakeServer(t, replyWith(func(req []byte) []byte {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.reqs = append(rec.reqs, req)
		return rec.reply
	}))
	return New(s.path), rec
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		return ""
	}
	return string(r.reqs[len(r.reqs)-1])
}

func TestAddPool(t *testing.T) {
	c, rec := newRecorder(t, "0\x00")
	ctx := context.Background()
	err := c.AddPool(ctx, "p1", "file-reflink", map[string]string{"setup_check": "False", "dir_path": "/var/lib/qubes/p1"})
	if err != nil {
		t.Fatal(err)
	}
	want := "admin.pool.Add+file-reflink dom0 name dom0\x00name=p1\ndir_path=/var/lib/qubes/p1\nsetup_check=False\n"
	if got := rec.last(); got != want {
		t.Errorf("request = %q, want %q", got, want)
	}
	if err := c.AddPool(ctx, "p1", "file", map[string]string{"name": "x"}); err == nil {
		t.Error("AddPool with a name option: no error")
	}
	if err := c.AddPool(ctx, "p1", "file", map[string]string{"a": "b\nc=d"}); err == nil {
		t.Error("AddPool with a newline in a value: no error")
	}
	if err := c.SetPoolEphemeralVolatile(ctx, "p1", false); err != nil {
		t.Fatal(err)
	}
	if got := rec.last(); got != "admin.pool.Set.ephemeral_volatile+p1 dom0 name dom0\x00False" {
		t.Errorf("request = %q", got)
	}
	rec.reply = []byte("2\x00QubesException\x00\x00missing required driver options: dir_path\x00")
	err = c.AddPool(ctx, "p1", "file-reflink", nil)
	var e *Error
	if !errors.As(err, &e) || e.Error() != "missing required driver options: dir_path" {
		t.Errorf("AddPool: %v", err)
	}
	if !bytes.HasSuffix(rec.reqs[len(rec.reqs)-1], []byte("\x00name=p1\n")) {
		t.Errorf("request = %q", rec.last())
	}
}
