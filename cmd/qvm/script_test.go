package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary run as qvm and as each qvm-* name, so that
// testscript's exec runs the real program (chosen by argv[0], as installed).
func TestMain(m *testing.M) {
	// Every exec in a script runs this test binary again; built with -race,
	// each would sleep 1 s at exit waiting for late race reports.
	// testscript passes GORACE on to the commands.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=10")
	}
	cmds := map[string]func(){"qvm": main}
	for _, t := range tools {
		cmds[t.name] = main
	}
	testscript.Main(m, cmds)
}

// TestScripts runs testdata/script/*.txtar against a fake qubesd that
// replays the reference daemon's transcripts. In a script:
//
//   - $QUBESD_SOCKET points at the fake;
//   - a file replies.jsonl, if present, adds replies (transcript lines, or
//     {"clone": "vm0002", "as": ["vm0003"]} to copy a qube's replies);
//   - calls.log receives one line per Admin API call ("method+arg dest");
//   - a request without a recorded reply fails the test;
//   - "exits N prog args..." runs prog and checks its exit status is N.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		// UPDATE_SCRIPTS=1 rewrites the expected outputs (review the diff).
		UpdateScripts: os.Getenv("UPDATE_SCRIPTS") != "",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits": cmdExits,
		},
		Setup: func(e *testscript.Env) error {
			r, err := newReplay(filepath.Join(e.WorkDir, "replies.jsonl"))
			if err != nil {
				return err
			}
			log, err := os.Create(filepath.Join(e.WorkDir, "calls.log"))
			if err != nil {
				return err
			}
			r.callLog = log
			s, err := startFake(r.answer)
			if err != nil {
				return err
			}
			e.Setenv("QUBESD_SOCKET", s.path)
			e.Setenv("FAKE_SOCKET", s.path)
			e.Defer(func() {
				s.close()
				log.Close()
				if m := r.takeMisses(); len(m) > 0 {
					e.T().Fatal(fmt.Sprintf("requests without a recorded reply: %q", m))
				}
			})
			return nil
		},
	})
}

// cmdExits runs a program and checks its exit status; its output can then
// be checked with stdout and stderr.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits STATUS program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad status %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}
