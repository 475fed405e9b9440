package events_test

import (
	"errors"
	"fmt"

	"github.com/qubesgo/qubesd/core/events"
)

// Handlers run by tier, Core first; a pre-event runs them in reverse so the
// core has the last word, and any handler can veto it.
func ExampleBus_Fire() {
	b := events.New()
	show := func(who string) events.Handler {
		return func(e *events.Event) error {
			v, _ := e.Arg("newvalue")
			fmt.Printf("%s: %s newvalue=%v\n", who, e.Name, v)
			return nil
		}
	}
	b.Subscribe("*", events.Observer, show("observer"))
	b.Subscribe("property-set:*", events.Core, show("core"))
	b.Subscribe("property-pre-set:netvm", events.Core, func(e *events.Event) error {
		if v, _ := e.Arg("newvalue"); v == "sys-usb" {
			return errors.New("sys-usb does not provide network")
		}
		return nil
	})

	kw := func(v string) []events.KV {
		return []events.KV{{Key: "name", Value: "netvm"}, {Key: "newvalue", Value: v}}
	}
	if _, err := b.Fire("vm1", "property-pre-set:netvm", true, kw("sys-usb")...); err != nil {
		fmt.Println("vetoed:", err)
	}
	if _, err := b.Fire("vm1", "property-set:netvm", false, kw("sys-firewall")...); err != nil {
		fmt.Println(err)
	}
	fmt.Println("events fired:", b.LastSeq())
	// Output:
	// observer: property-pre-set:netvm newvalue=sys-usb
	// vetoed: sys-usb does not provide network
	// core: property-set:netvm newvalue=sys-firewall
	// observer: property-set:netvm newvalue=sys-firewall
	// events fired: 2
}
