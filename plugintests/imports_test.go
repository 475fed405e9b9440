package plugintests

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/qubesgo/qubesd"

// TestImportRules enforces DESIGN.md §2: plugins import only the sdk
// module; the sdk never imports the root module; the core never imports
// plugins. A third-party driver has exactly what ours have.
func TestImportRules(t *testing.T) {
	rules := []struct {
		dir string
		// allowed says whether the file at file may import p.
		allowed func(file, p string) bool
		why     string
	}{
		{"sdk", func(_, p string) bool { return strings.HasPrefix(p, module+"/sdk") }, "sdk/ must not import the root module"},
		{"plugins", func(file, p string) bool {
			return strings.HasPrefix(p, module+"/sdk") || strings.HasPrefix(p+"/", module+"/"+pluginOf(file)+"/")
		}, "plugins/ may import only the sdk module and their own plugin's packages"},
		{"core", func(_, p string) bool { return !strings.HasPrefix(p, module+"/plugins") }, "core/ must not import plugins/"},
	}
	checked := 0
	for _, r := range rules {
		root := filepath.Join("..", r.dir)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			checked++
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if strings.HasPrefix(p, module) && !r.allowed(path, p) {
					t.Errorf("%s imports %s: %s", path, p, r.why)
				}
			}
			return nil
		})
		if err != nil && !strings.Contains(err.Error(), "no such file") {
			t.Fatal(err)
		}
	}
	if checked == 0 {
		t.Fatal("no Go files checked")
	}
}

// pluginOf returns "plugins/NAME" for a file under ../plugins/NAME/.
func pluginOf(file string) string {
	parts := strings.Split(filepath.ToSlash(filepath.Clean(file)), "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "plugins" {
			return "plugins/" + parts[i+1]
		}
	}
	return "plugins/?"
}

func TestPluginOf(t *testing.T) {
	tests := []struct{ file, want string }{
		{"../plugins/pool-file/filepool/reflink.go", "plugins/pool-file"},
		{"../plugins/pool-kernels/cmd/qubesd-pool-kernels/main.go", "plugins/pool-kernels"},
		{"../sdk/pool/driver.go", "plugins/?"},
	}
	for _, tt := range tests {
		if got := pluginOf(tt.file); got != tt.want {
			t.Errorf("pluginOf(%q) = %q, want %q", tt.file, got, tt.want)
		}
	}
}
