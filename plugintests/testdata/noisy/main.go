// Command noisy is a pool-driver plugin for tests that prints to stdout
// before serving, as a careless dependency's init does; the daemon must
// start it anyway.
package main

import (
	"context"
	"fmt"

	"github.com/qubesgo/qubesd/sdk/pool"
)

type driver struct{ pool.UnimplementedDriver }

func (driver) Info(context.Context) (pool.Info, error) {
	return pool.Info{Name: "noisy", Version: "test"}, nil
}

func (driver) Configure(context.Context, []byte) error { return nil }

func main() {
	fmt.Println("noise before the handshake")
	fmt.Println("2|999|tcp|nowhere|smoke") // almost a handshake line, but not quite
	pool.Serve(driver{})
}
