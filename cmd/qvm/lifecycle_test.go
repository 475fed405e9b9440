package main

import (
	"context"
	"reflect"
	"testing"

	"github.com/qubesgo/qubesd/sdk/admin"
)

func TestShutdownWaves(t *testing.T) {
	// qube: state and netvm
	type q struct{ state, netvm string }
	for _, tc := range []struct {
		name  string
		qubes map[string]q
		order []string // the qubes named, in command-line order
		want  [][]string
	}{
		{
			name: "chain",
			qubes: map[string]q{"sys-net": {"Running", ""}, "sys-firewall": {"Running", "sys-net"},
				"work": {"Running", "sys-firewall"}, "mail": {"Paused", "sys-firewall"}},
			order: []string{"sys-net", "sys-firewall", "work", "mail"},
			want:  [][]string{{"work", "mail"}, {"sys-firewall"}, {"sys-net"}},
		},
		{
			name:  "netvm not named: all at once",
			qubes: map[string]q{"sys-net": {"Running", ""}, "work": {"Running", "sys-net"}, "mail": {"Running", "sys-net"}},
			order: []string{"work", "mail"},
			want:  [][]string{{"work", "mail"}},
		},
		{
			name:  "halted client: no order",
			qubes: map[string]q{"sys-net": {"Running", ""}, "work": {"Halted", "sys-net"}},
			order: []string{"sys-net", "work"},
			want:  [][]string{{"sys-net", "work"}},
		},
		{
			name: "independent qubes join the first wave",
			qubes: map[string]q{"sys-net": {"Running", ""}, "work": {"Running", "sys-net"},
				"offline": {"Running", ""}, "halted": {"Halted", ""}},
			order: []string{"sys-net", "offline", "work", "halted"},
			want:  [][]string{{"offline", "work", "halted"}, {"sys-net"}},
		},
		{
			name:  "a loop (the daemon refuses them) keeps the given order",
			qubes: map[string]q{"a": {"Running", "b"}, "b": {"Running", "a"}, "c": {"Running", "a"}},
			order: []string{"a", "b", "c"},
			want:  [][]string{{"c"}, {"a", "b"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var infos []admin.VMInfo
			for n, q := range tc.qubes {
				infos = append(infos, admin.VMInfo{Name: n, Class: "AppVM", State: q.state})
			}
			l := newLsLoader(nil, infos) // no client: everything is known
			l.bulkTried = true
			for n, q := range tc.qubes {
				l.byName[n].props = map[string]admin.Property{"netvm": {Name: "netvm", Value: q.netvm}}
			}
			var vms []*lsVM
			for _, n := range tc.order {
				vms = append(vms, l.byName[n])
			}
			waves, err := shutdownWaves(context.Background(), l, vms)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for _, w := range waves {
				var names []string
				for _, vm := range w {
					names = append(names, vm.Name)
				}
				got = append(got, names)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("waves %v, want %v", got, tc.want)
			}
		})
	}
}
