// Command qubesd is the Qubes admin daemon: it serves the Admin API on unix
// sockets for the qvm-* tools, the GUI and management qubes.
//
//	qubesd [--config FILE]                 run (a missing store is created)
//	qubesd [--config FILE] init            create a new, empty store and exit
//	qubesd --print-default-config          print the embedded configuration
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/config"
	"github.com/qubesgo/qubesd/core/daemon"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("qubesd", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded configuration)")
	printDefault := fs.Bool("print-default-config", false, "print the embedded default configuration and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: qubesd [--config FILE] [init]\n       qubesd --print-default-config\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *printDefault {
		fmt.Print(config.DefaultText())
		return 0
	}
	var cfg *config.Config
	var err error
	if *cfgPath != "" {
		cfg, err = config.Load(*cfgPath)
	} else {
		cfg, err = config.Default()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "qubesd: %v\n", err)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "qubesd",
		Level:      cfg.Daemon.HCLogLevel(),
		JSONFormat: cfg.Daemon.LogFormat == "json",
		Output:     os.Stderr,
	})
	switch fs.Arg(0) {
	case "":
	case "init":
		if err := daemon.Init(cfg, log); err != nil {
			log.Error("init failed", "error", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "qubesd: unknown command %q (the only command is 'init')\n", fs.Arg(0))
		return 2
	}

	d, err := daemon.Start(cfg, log)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	log.Info("ready; point the tools at it with: export QUBESD_SOCKET=" + cfg.Daemon.SocketPath())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	code := 0
	select {
	case s := <-sig:
		log.Info("stopping", "signal", s.String())
	case err := <-d.Done():
		log.Error("a server stopped unexpectedly; shutting down", "error", err)
		code = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			log.Error("calls still running after 30 s; stopping anyway", "error", err)
		} else {
			log.Error("shutdown incomplete", "error", err)
		}
		return 1
	}
	log.Info("stopped; every change is saved")
	return code
}
