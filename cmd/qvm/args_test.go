package main

import (
	"slices"
	"testing"

	"github.com/spf13/pflag"
)

func TestNormalizeArgs(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.StringSlice("tags", nil, "")
	fs.StringSlice("class", nil, "")
	fs.StringP("fields", "O", "", "")
	fs.BoolP("force", "f", false, "")
	fs.CountP("verbose", "v", "")
	fs.Bool("raw-list", false, "")
	markMulti(fs, "tags", "class")

	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{"vm1"}, []string{"--", "vm1"}},
		{[]string{"--tags", "a", "b", "--raw-list"}, []string{"--tags=a", "--tags=b", "--raw-list"}},
		// argparse's nargs='+' takes the qube names too.
		{[]string{"--tags", "a", "vm1"}, []string{"--tags=a", "--tags=vm1"}},
		{[]string{"vm1", "--tags=a", "vm2"}, []string{"--tags=a", "--", "vm1", "vm2"}},
		{[]string{"--tags"}, []string{"--tags"}},
		{[]string{"--class", "AppVM", "--", "vm1"}, []string{"--class=AppVM", "--", "vm1"}},
		{[]string{"-O", "name,state", "vm1"}, []string{"-O", "name,state", "--", "vm1"}},
		{[]string{"-Oname", "vm1"}, []string{"-Oname", "--", "vm1"}},
		{[]string{"-fvO", "name", "vm1"}, []string{"-fvO", "name", "--", "vm1"}},
		{[]string{"--fields", "-weird-", "vm1"}, []string{"--fields", "-weird-", "--", "vm1"}},
		// Negative numbers are values (qvm-prefs vm qrexec_timeout -5).
		{[]string{"vm", "prop", "-5"}, []string{"--", "vm", "prop", "-5"}},
		{[]string{"-f", "vm", "-"}, []string{"-f", "--", "vm", "-"}},
		{[]string{"--unknown", "x"}, []string{"--unknown", "--", "x"}},
		{[]string{"--", "-v"}, []string{"--", "-v"}},
	} {
		if got := normalizeArgs(fs, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("normalizeArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
