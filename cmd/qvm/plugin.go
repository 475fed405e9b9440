package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

// qvm-plugin: what plugins the daemon runs and how they are doing.

func newPluginCmd(t *tool) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:  "TOOL [options] [list]",
		Long: "Show the daemon's plugins (pool drivers and extensions): state, process id, restarts and the last error.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 || len(args) == 1 && args[0] != "list" && args[0] != "ls" {
				return usageErrorf("the only command is 'list'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPluginList(cmd.Context(), t, format)
		},
	}
	addOutputFlag(cmd.Flags(), &format)
	return cmd
}

func runPluginList(ctx context.Context, t *tool, format string) error {
	if err := checkOutputFormat(format); err != nil {
		return err
	}
	plugins, err := t.client().Plugins(ctx)
	if err != nil {
		return failure(err)
	}
	if format == "json" {
		list := make([]jsonObject, 0, len(plugins))
		for _, p := range plugins {
			list = append(list, jsonObject{{"name", p.Name}, {"kind", p.Kind}, {"state", p.State}, {"pid", p.PID}, {"restarts", p.Restarts}, {"last_error", p.LastError}})
		}
		return writeJSON(t.env.stdout, list)
	}
	rows := [][]string{{"NAME", "KIND", "STATE", "PID", "RESTARTS", "LAST-ERROR"}}
	for _, p := range plugins {
		pid := "-"
		if p.PID > 0 {
			pid = strconv.Itoa(p.PID)
		}
		lastErr := p.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		rows = append(rows, []string{p.Name, p.Kind, p.State, pid, strconv.Itoa(p.Restarts), lastErr})
	}
	if len(plugins) == 0 {
		_, err := fmt.Fprintln(t.env.stdout, "no plugins configured")
		return err
	}
	_, err = fmt.Fprint(t.env.stdout, formatTable(rows))
	return err
}
