package qubes

import (
	"testing"

	"github.com/qubesgo/qubesd/core/qerr"
)

// TestDisposableHelpers: the model side of admin.vm.CreateDisposable and of
// the auto-cleanup — which qubes make disposables, which disposables go
// when they stop, what keeps one, and the preload list.
func TestDisposableHelpers(t *testing.T) {
	a, _, _ := loadFixture(t)
	if err := set(t, a, qube(t, a, "vm0001"), "template_for_dispvms", "True"); err != nil {
		t.Fatal(err)
	}
	refused := "Refusing to create disposable out of app qube which has template_for_dispvms=False"
	tests := []struct {
		name     string
		template string // "" for nil (no default_dispvm)
		err      string
	}{
		{"no template", "", refused},
		{"an AppVM without template_for_dispvms", "vm0002", refused},
		{"a TemplateVM", "debian-12-xfce", refused},
		{"dom0", "dom0", refused},
		{"a disposable template", "vm0001", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tpl *Qube
			if tt.template != "" {
				tpl = qube(t, a, tt.template)
			}
			var opt CreateOptions
			err := a.Read(func() error {
				var err error
				opt, err = DisposableOptions(tpl)
				return err
			})
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || qerr.KindOf(err) != qerr.Exception {
					t.Fatalf("got %v, want QubesException %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opt.Template != tpl || !opt.AutoCleanup || opt.Label == nil || opt.Label != tpl.label() || opt.Name != "" {
				t.Errorf("options %+v: want template %s, its label, auto_cleanup, no name", opt, tpl.Name())
			}
		})
	}

	tpl := qube(t, a, "vm0001")
	create := func(auto bool) *Qube {
		t.Helper()
		var d *Qube
		if _, err := a.Write(func() error {
			opt, err := DisposableOptions(tpl)
			if err != nil {
				return err
			}
			opt.AutoCleanup = auto
			d, err = a.Create(DispVMClass, opt)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	auto, named := create(true), create(false)
	// tags are a set: the template's guivm/audiovm tags are not added twice
	_ = a.Read(func() error {
		seen := map[string]int{}
		for _, tag := range auto.Tags.All() {
			seen[tag]++
		}
		for tag, n := range seen {
			if n > 1 {
				t.Errorf("disposable has tag %s %d times: %v", tag, n, auto.Tags.All())
			}
		}
		return nil
	})
	_ = a.Read(func() error {
		for _, c := range []struct {
			q    *Qube
			want bool
		}{{auto, true}, {named, false}, {tpl, false}, {a.AdminVM(), false}} {
			if got := c.q.AutoCleanup(); got != c.want {
				t.Errorf("%s AutoCleanup = %v, want %v", c.q.Name(), got, c.want)
			}
		}
		return nil
	})

	// a reference keeps a disposable; without it, it may go
	if err := set(t, a, auto, "provides_network", "True"); err != nil {
		t.Fatal(err)
	}
	if err := set(t, a, qube(t, a, "vm0003"), "netvm", auto.Name()); err != nil {
		t.Fatal(err)
	}
	if err := a.Read(auto.CheckUnreferenced); qerr.KindOf(err) != qerr.VMInUse {
		t.Errorf("CheckUnreferenced of a netvm in use: %v, want QubesVMInUseError", err)
	}
	if err := reset(t, a, qube(t, a, "vm0003"), "netvm"); err != nil {
		t.Fatal(err)
	}
	if err := a.Read(auto.CheckUnreferenced); err != nil {
		t.Errorf("CheckUnreferenced of an unused disposable: %v", err)
	}

	// ForgetPreload takes the disposable, and only it, off the list
	tests2 := []struct{ list, want string }{
		{auto.Name(), ""},
		{"other " + auto.Name() + " more", "other more"},
		{"other more", "other more"},
	}
	for _, tt := range tests2 {
		if _, err := a.Write(func() error {
			if err := tpl.Features.Set("preload-dispvm", tt.list); err != nil {
				return err
			}
			return auto.ForgetPreload()
		}); err != nil {
			t.Fatalf("ForgetPreload from %q: %v", tt.list, err)
		}
		if got, _ := tpl.Features.Get("preload-dispvm"); got != tt.want {
			t.Errorf("preload-dispvm %q after ForgetPreload of %s: %q, want %q", tt.list, auto.Name(), got, tt.want)
		}
	}
	if _, err := a.Write(func() error { return tpl.ForgetPreload() }); err != nil {
		t.Errorf("ForgetPreload of a qube that is no disposable: %v", err)
	}
}

// A disposable of a StandaloneVM snapshots the StandaloneVM's own root (it
// has no template whose root it runs from); one of an AppVM snapshots the
// AppVM's template's root.
func TestDisposableRootSource(t *testing.T) {
	a, _, _ := loadFixture(t)
	rootSource := func(q *Qube) string { return q.volumeSource("root") }
	var sa, fromSA, fromApp *Qube
	if _, err := a.Write(func() error {
		var err error
		if sa, err = a.Create(StandaloneVMClass, CreateOptions{Name: "sa-dvm", Label: qube(t, a, "vm0001").label()}); err != nil {
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sa-dvm", "vm0001"} {
		if err := set(t, a, qube(t, a, name), "template_for_dispvms", "True"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Write(func() error {
		opt, err := DisposableOptions(sa)
		if err != nil {
			return err
		}
		if fromSA, err = a.Create(DispVMClass, opt); err != nil {
			return err
		}
		if opt, err = DisposableOptions(qube(t, a, "vm0001")); err != nil {
			return err
		}
		fromApp, err = a.Create(DispVMClass, opt)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = a.Read(func() error {
		if got, want := rootSource(fromSA), sa.volumeVID("root"); got != want || want == "" {
			t.Errorf("root source of a StandaloneVM's disposable = %q, want its root %q", got, want)
		}
		app := qube(t, a, "vm0001")
		if got, want := rootSource(fromApp), app.volumeSource("root"); got != want || want == "" {
			t.Errorf("root source of an AppVM's disposable = %q, want the template's root %q", got, want)
		}
		return nil
	})
}
