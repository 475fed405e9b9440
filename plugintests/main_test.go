// Package plugintests runs the real daemon pieces with real plugin
// binaries: the plugin host launching, supervising and restarting pool
// drivers built from sdk/examples and from testdata, and qubesd itself
// killed with its plugins running.
package plugintests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bin holds the binaries TestMain builds: qubesd, the example pool driver
// and the test plugins of testdata/.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugintests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	code := func() int {
		defer os.RemoveAll(dir)
		for _, b := range []struct{ out, dir, pkg string }{
			{"qubesd", "..", "./cmd/qubesd"},
			{"qvm", "..", "./cmd/qvm"},
			{"pool-dir", filepath.Join("..", "sdk"), "./examples/pool-dir"},
			{"ext-hello", filepath.Join("..", "sdk"), "./examples/ext-hello"},
			{"reenter", "..", "./plugintests/testdata/reenter"},
			{"hang", "..", "./plugintests/testdata/hang"},
			{"noisy", "..", "./plugintests/testdata/noisy"},
			{"otherproto", "..", "./plugintests/testdata/otherproto"},
			{"othercookie", "..", "./plugintests/testdata/othercookie"},
			{"benchext", "..", "./plugintests/testdata/benchext"},
			{"grpcecho", "..", "./plugintests/testdata/grpcecho"},
			{"qubesd-pool-file-reflink", "..", "./plugins/pool-file/cmd/qubesd-pool-file-reflink"},
			{"qubesd-pool-file", "..", "./plugins/pool-file/cmd/qubesd-pool-file"},
			{"qubesd-pool-kernels", "..", "./plugins/pool-kernels/cmd/qubesd-pool-kernels"},
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
			cmd.Dir = b.dir
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.pkg, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}
