package main

import (
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// nargsAnnotation marks flags that, like argparse's nargs='+', take every
// following argument up to the next option: `qvm-ls --tags a b c`.
const nargsAnnotation = "qvm-nargs+"

// markMulti marks flag name of fs as taking several arguments.
func markMulti(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		_ = fs.SetAnnotation(n, nargsAnnotation, []string{"true"})
	}
}

var negativeNumber = regexp.MustCompile(`^-[0-9]+(\.[0-9]*)?$`)

// looksLikeOption reports whether argparse would take arg for an option.
func looksLikeOption(arg string) bool {
	return len(arg) > 1 && arg[0] == '-' && !negativeNumber.MatchString(arg)
}

// normalizeArgs rewrites a command line written for Python's argparse into
// one pflag parses the same way:
//
//   - an option marked with markMulti takes all following arguments up to the
//     next option (`--tags a b` becomes `--tags=a --tags=b`);
//   - negative numbers are values, not options (`qvm-prefs vm x -5`);
//
// Options come first, then "--" and the positional arguments, so that no
// positional argument is ever read as an option.
func normalizeArgs(fs *pflag.FlagSet, args []string) []string {
	var opts, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case !looksLikeOption(a):
			pos = append(pos, a)
		case strings.HasPrefix(a, "--"):
			name, _, inline := strings.Cut(a[2:], "=")
			f := fs.Lookup(name)
			if f == nil || inline || f.NoOptDefVal != "" {
				opts = append(opts, a)
				continue
			}
			if _, multi := f.Annotations[nargsAnnotation]; multi {
				j := i + 1
				for ; j < len(args) && args[j] != "--" && !looksLikeOption(args[j]); j++ {
					opts = append(opts, "--"+name+"="+args[j])
				}
				if j == i+1 {
					opts = append(opts, a) // pflag reports the missing value
				}
				i = j - 1
				continue
			}
			opts = append(opts, a)
			if i+1 < len(args) {
				opts = append(opts, args[i+1])
				i++
			}
		default: // one or more short options: -fq, -O name,state, -Oname
			opts = append(opts, a)
			for k := 1; k < len(a); k++ {
				f := fs.ShorthandLookup(a[k : k+1])
				if f == nil {
					break // pflag reports it
				}
				if f.NoOptDefVal == "" { // takes a value
					if k == len(a)-1 && i+1 < len(args) {
						opts = append(opts, args[i+1])
						i++
					}
					break
				}
			}
		}
	}
	if len(pos) == 0 {
		return opts
	}
	return append(append(opts, "--"), pos...)
}

// vmAndUpTo checks "VMNAME [X [Y]]"-style positional arguments: a qube name
// and at most max arguments in all.
func vmAndUpTo(max int) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < 1 {
			return usageErrorf("the following arguments are required: VMNAME")
		}
		if len(args) > max {
			return usageErrorf("unrecognized arguments: %s", strings.Join(args[max:], " "))
		}
		return nil
	}
}

// checkAllOrNames checks the "--all | VMNAME..." choice of the tools that
// act on several qubes.
func checkAllOrNames(all bool, args, exclude []string) error {
	switch {
	case all && len(args) > 0:
		return usageErrorf("argument --all: not allowed with argument VMNAME")
	case !all && len(args) == 0:
		return usageErrorf("one of the arguments --all VMNAME is required")
	case !all && len(exclude) > 0:
		return usageErrorf("--exclude can only be used with --all")
	}
	return nil
}

// parsePools reads -p volume_name=pool_name options (qvm-create, qvm-clone).
func parsePools(specs []string) (map[string]string, error) {
	pools := map[string]string{}
	for _, p := range specs {
		vol, pool, ok := strings.Cut(p, "=")
		if !ok || strings.Contains(pool, "=") {
			return nil, usageErrorf("Pool argument must be of form: -p volume_name=pool_name")
		}
		pools[vol] = pool
	}
	return pools, nil
}
