package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// tagCommands maps qvm-tags' commands and their aliases to the command.
var tagCommands = map[string]string{
	"list": "list", "ls": "list", "l": "list",
	"add": "add", "a": "add", "set": "add",
	"del": "del", "d": "del", "unset": "del", "u": "del",
}

func newTagsCmd(t *tool) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use: "TOOL [options] VMNAME [list [TAG] | add TAG... | del TAG...]",
		Long: "Manage a qube's tags.\n\n" +
			"  list (ls, l) [TAG]   list the tags, or print TAG if the qube has it (exit status 1 if not)\n" +
			"  add (a, set) TAG...  add tags\n" +
			"  del (d, unset, u) TAG...\n" +
			"                       remove tags (removing a tag the qube does not have is not an error)",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageErrorf("the following arguments are required: VMNAME")
			}
			if len(args) == 1 {
				return nil
			}
			cmd, ok := tagCommands[args[1]]
			if !ok {
				return usageErrorf("argument command: invalid choice: '%s' (choose from 'list', 'ls', 'l', 'add', 'a', 'set', 'del', 'd', 'unset', 'u')", args[1])
			}
			switch n := len(args) - 2; {
			case cmd == "list" && n > 1:
				return usageErrorf("unrecognized arguments: %s", strings.Join(args[3:], " "))
			case cmd != "list" && n == 0:
				return usageErrorf("the following arguments are required: tag")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTags(cmd.Context(), t, format, args)
		},
		ValidArgsFunction: completeTags(t),
	}
	addOutputFlag(cmd.Flags(), &format)
	return cmd
}

func runTags(ctx context.Context, t *tool, format string, args []string) error {
	if err := checkOutputFormat(format); err != nil {
		return err
	}
	c := t.client()
	vm := args[0]
	if _, err := c.VM(ctx, vm); err != nil {
		return vmError(err)
	}
	cmd := "list"
	if len(args) > 1 {
		cmd = tagCommands[args[1]]
	}
	var tags []string
	if len(args) > 2 {
		tags = args[2:]
	}
	switch cmd {
	case "list":
		if len(tags) == 1 {
			has, err := c.HasTag(ctx, vm, tags[0])
			if err != nil {
				return failure(err)
			}
			if !has {
				return exitStatus(1)
			}
			fmt.Fprintln(t.env.stdout, tags[0])
			return nil
		}
		list, err := c.Tags(ctx, vm)
		if err != nil {
			return failure(err)
		}
		slices.Sort(list)
		if format == "json" {
			if list == nil {
				list = []string{}
			}
			return writeJSON(t.env.stdout, list)
		}
		if len(list) > 0 {
			fmt.Fprintln(t.env.stdout, strings.Join(list, "\n"))
		}
	case "add":
		for _, tag := range tags {
			if err := c.AddTag(ctx, vm, tag); err != nil {
				return failure(err)
			}
		}
	case "del":
		for _, tag := range tags {
			if err := c.RemoveTag(ctx, vm, tag); err != nil && !admin.IsNotFound(err) {
				return failure(err)
			}
		}
	}
	return nil
}
