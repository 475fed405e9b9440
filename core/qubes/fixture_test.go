package qubes

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/store"
)

// The reference implementation's files live in shared/fixtures beside the
// repository; its state directory is written as /var/lib/qubes and is mapped
// to a temporary data directory here.
const refDataDir = "/var/lib/qubes"

func fixturePath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "fixtures", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture %s not found (shared/ must sit beside the repository): %v", name, err)
	}
	return p
}

// testDataDir makes a data directory with the kernel the fixture uses.
func testDataDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	k := filepath.Join(dir, "vm-kernels", "6.6.0-baseline")
	if err := os.MkdirAll(k, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinuz", "initramfs", "modules.img"} {
		if err := os.WriteFile(filepath.Join(k, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func testOptions(dir string) Options {
	return Options{DataDir: dir, HostMemoryMiB: 16384, HostCPUs: 2, AdminMaxMemMiB: 4096}
}

// loadFixture loads shared/fixtures/qubes-n10.xml with paths mapped to a
// temporary data directory, and returns the model and the mapped bytes.
func loadFixture(t testing.TB) (*App, []byte, string) {
	t.Helper()
	raw, err := os.ReadFile(fixturePath(t, "qubes-n10.xml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := testDataDir(t)
	mapped := []byte(strings.ReplaceAll(string(raw), refDataDir, dir))
	doc, err := store.Decode(mapped)
	if err != nil {
		t.Fatal(err)
	}
	a, rep, err := Load(doc, testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Quarantined) > 0 || len(rep.Dropped) > 0 {
		t.Fatalf("fixture loaded with problems: quarantined %v, dropped %v", rep.Quarantined, rep.Dropped)
	}
	return a, mapped, dir
}

func TestFixtureRoundTrip(t *testing.T) {
	a, mapped, _ := loadFixture(t)
	var out []byte
	_ = a.Read(func() error { out = store.Encode(a.Document()); return nil })
	if string(out) != string(mapped) {
		t.Errorf("saving the unchanged fixture does not give back the same bytes:\n%s", firstDiff(string(mapped), string(out)))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n want: " + w + "\n  got: " + g
		}
	}
	return "(identical lines, different bytes)"
}

// transcript reads the recorded Admin API calls of the reference.
type transcriptLine struct {
	Req struct {
		Method, Arg, Dest, Src, Payload string
	} `json:"req"`
	RespText string `json:"resp_text"`
}

func readTranscript(t testing.TB, name string) []transcriptLine {
	t.Helper()
	f, err := os.Open(fixturePath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []transcriptLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l transcriptLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// serialize renders a property as admin.*.property.Get does.
func serialize(isDefault bool, typ string, value string) string {
	d := "False"
	if isDefault {
		d = "True"
	}
	return "default=" + d + " type=" + typ + " " + value
}

// TestFixturePropertyValues checks every property of every qube and every
// global property against the reference's recorded property.GetAll replies:
// default flag, type and value.
func TestFixturePropertyValues(t *testing.T) {
	a, _, dir := loadFixture(t)
	checked := 0
	for _, l := range readTranscript(t, "admin-api/public-n10-read.jsonl") {
		if l.Req.Method != "admin.vm.property.GetAll" && l.Req.Method != "admin.property.GetAll" {
			continue
		}
		if !strings.HasPrefix(l.RespText, "0\x00") {
			continue
		}
		want := strings.Split(strings.TrimSuffix(l.RespText[2:], "\n"), "\n")
		var got []string
		_ = a.Read(func() error {
			var names []string
			var get func(string) (string, error)
			if l.Req.Method == "admin.property.GetAll" {
				for _, d := range a.Table().All() {
					names = append(names, d.Name)
				}
				get = func(n string) (string, error) { return describe(a, n) }
			} else {
				q, err := a.Qube(l.Req.Dest)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range q.Table().All() {
					names = append(names, d.Name)
				}
				get = func(n string) (string, error) { return describe(q, n) }
			}
			for _, n := range names {
				s, err := get(n)
				if err != nil {
					t.Fatalf("%s %s: %v", l.Req.Dest, n, err)
				}
				s = strings.ReplaceAll(s, dir, refDataDir)
				got = append(got, n+" "+s)
			}
			return nil
		})
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s of %s differs from the reference:\n%s", l.Req.Method, l.Req.Dest, firstDiff(strings.Join(want, "\n"), strings.Join(got, "\n")))
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("only %d GetAll replies checked; is the transcript complete?", checked)
	}
}

type holder interface {
	Descriptor(string) (*P, error)
	Value(*P) (any, error)
	IsDefault(*P) bool
}

func describe(h holder, name string) (string, error) {
	d, err := h.Descriptor(name)
	if err != nil {
		return "", err
	}
	v, err := h.Value(d)
	text := ""
	if err == nil {
		text = d.Text(v)
	}
	text = strings.ReplaceAll(strings.ReplaceAll(text, `\`, `\\`), "\n", `\n`)
	return serialize(h.IsDefault(d), d.Type.String(), text), nil
}

// TestGenerated1000RoundTrip loads a generated 1000-qube store and saves it
// unchanged: the bytes must be identical.
func TestGenerated1000RoundTrip(t *testing.T) {
	dir := testDataDir(t)
	raw := strings.ReplaceAll(string(store.Encode(store.GenerateDocument(1000))), refDataDir, dir)
	doc, err := store.Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	a, rep, err := Load(doc, testOptions(dir))
	if err != nil || len(rep.Quarantined) > 0 {
		t.Fatalf("load: %v, quarantined %v", err, rep.Quarantined)
	}
	d, _ := a.Snapshot()
	if out := string(store.Encode(d)); out != raw {
		t.Errorf("1000-qube store does not round-trip:\n%s", firstDiff(raw, out))
	}
}
