package admin_test

import (
	"context"
	"fmt"
	"log"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// List the qubes with their labels, as qvm-ls does: one admin.vm.List, then
// one admin.vm.property.GetAll per qube.
func Example() {
	ctx := context.Background()
	c := admin.New(admin.SocketFromEnv())
	vms, err := c.ListVMs(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, vm := range vms {
		props, err := c.Properties(ctx, vm.Name)
		if err != nil {
			log.Fatal(err)
		}
		for _, p := range props {
			if p.Name == "label" {
				fmt.Println(vm.Name, vm.State, p.Value)
			}
		}
	}
}

// Tell an absent feature from a failure.
func ExampleIsNotFound() {
	ctx := context.Background()
	c := admin.New("")
	v, err := c.Feature(ctx, "work", "gui")
	switch {
	case admin.IsNotFound(err):
		fmt.Println("not set")
	case err != nil:
		log.Fatal(err) // prints the daemon's message, e.g. "No such domain: 'work'"
	default:
		fmt.Println("gui =", v)
	}
}

// Follow the events of one qube until the context ends.
func ExampleClient_Events() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := admin.New(admin.SocketFromEnv())
	err := c.Events(ctx, "work", func(e admin.Event) error {
		switch e.Name {
		case admin.ConnectionEstablished:
			fmt.Println("subscribed")
		case "domain-shutdown":
			cancel() // stop after the first shutdown
		default:
			fmt.Println(e.Subject, e.Name, e.Kwargs)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}
