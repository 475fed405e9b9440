// Command hang is a pool-driver plugin for tests: it starts and answers
// Info, but its Create never returns, as a driver stuck on dead storage.
package main

import (
	"context"

	"github.com/qubesgo/qubesd/sdk/pool"
)

type driver struct{ pool.UnimplementedDriver }

func (driver) Info(context.Context) (pool.Info, error) {
	return pool.Info{Name: "hang", Version: "test"}, nil
}

func (driver) Configure(context.Context, []byte) error { return nil }

func (driver) Create(ctx context.Context, _ pool.Pool, _ pool.Volume) error {
	<-ctx.Done() // only the caller's deadline ends it
	select {}
}

func main() { pool.Serve(driver{}) }
