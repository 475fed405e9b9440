package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// completionTimeout bounds the Admin API calls made to complete a word, so
// that a daemon that does not answer never hangs the shell.
const completionTimeout = 2 * time.Second

func newCompletionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script for qvm and every qvm-* name",
		Long: "Print a shell completion script for qvm and for the tools' own names (qvm-ls, ...).\n\n" +
			"  bash:  source <(qvm completion bash)\n" +
			"  zsh:   source <(qvm completion zsh)\n" +
			"  fish:  qvm completion fish | source\n\n" +
			"Qube names, properties, features and tags are completed from qubesd when it answers.",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			script, err := completionScript(args[0])
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(script)
			return err
		},
	}
}

// completionScript returns the script for shell: cobra's script for qvm,
// made to serve the tool names too (each completes through its own
// "__complete" request, which every tool name answers).
func completionScript(shell string) ([]byte, error) {
	e := env{getenv: func(string) string { return "" }}
	var b bytes.Buffer
	names := []string{"qvm"}
	for _, t := range tools {
		names = append(names, t.name)
	}
	switch shell {
	case "bash", "fish":
		for _, name := range names {
			var root *cobra.Command
			if spec := toolByName(name); spec != nil {
				root = newToolCmd(spec, spec.name, e)
			} else {
				root = newQvmCmd(e)
			}
			var err error
			if shell == "bash" {
				err = root.GenBashCompletionV2(&b, true)
			} else {
				err = root.GenFishCompletion(&b, true)
			}
			if err != nil {
				return nil, err
			}
		}
	case "zsh":
		if err := newQvmCmd(e).GenZshCompletion(&b); err != nil {
			return nil, err
		}
		all := strings.Join(names, " ")
		s := strings.Replace(b.String(), "#compdef qvm\n", "#compdef "+all+"\n", 1)
		s = strings.Replace(s, "\ncompdef _qvm qvm\n", "\ncompdef _qvm "+all+"\n", 1)
		return []byte(s), nil
	default:
		return nil, usageErrorf("unsupported shell %q (choose bash, zsh or fish)", shell)
	}
	return b.Bytes(), nil
}

type completeFunc = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective)

// withDaemon runs fn with a short deadline; errors complete nothing.
func withDaemon(cmd *cobra.Command, fn func(ctx context.Context) ([]string, error)) ([]string, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	words, err := fn(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return words, cobra.ShellCompDirectiveNoFileComp
}

func (t *tool) vmNames(ctx context.Context) ([]string, error) {
	vms, err := t.client().ListVMs(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(vms))
	for i, vm := range vms {
		names[i] = vm.Name
	}
	return names, nil
}

// completeVMs completes qube names for the first n positional arguments
// (n < 0: all of them), without repeating names already given.
func completeVMs(t *tool, n int) completeFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if n >= 0 && len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return withDaemon(cmd, func(ctx context.Context) ([]string, error) {
			names, err := t.vmNames(ctx)
			return slices.DeleteFunc(names, func(s string) bool { return slices.Contains(args, s) }), err
		})
	}
}

// completeVMsFlag completes a flag's value with qube names.
func completeVMsFlag(t *tool) completeFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return withDaemon(cmd, t.vmNames)
	}
}

func completeLabels(t *tool) completeFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return withDaemon(cmd, t.client().Labels)
	}
}

func completeClasses(t *tool) completeFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return withDaemon(cmd, t.client().VMClasses)
	}
}

// completePrefs completes VMNAME (withVM), then property names.
func completePrefs(t *tool, withVM bool) completeFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		c := t.client()
		switch {
		case withVM && len(args) == 0:
			return withDaemon(cmd, t.vmNames)
		case withVM && len(args) == 1:
			return withDaemon(cmd, func(ctx context.Context) ([]string, error) { return c.PropertyNames(ctx, args[0]) })
		case !withVM && len(args) == 0:
			return withDaemon(cmd, c.GlobalPropertyNames)
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

func completeFeatures(t *tool) completeFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return withDaemon(cmd, t.vmNames)
		case 1:
			return withDaemon(cmd, func(ctx context.Context) ([]string, error) { return t.client().Features(ctx, args[0]) })
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

func completeTags(t *tool) completeFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		switch {
		case len(args) == 0:
			return withDaemon(cmd, t.vmNames)
		case len(args) == 1:
			return []string{"list", "add", "del"}, cobra.ShellCompDirectiveNoFileComp
		case tagCommands[args[1]] == "del" || tagCommands[args[1]] == "list":
			return withDaemon(cmd, func(ctx context.Context) ([]string, error) { return t.client().Tags(ctx, args[0]) })
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}
