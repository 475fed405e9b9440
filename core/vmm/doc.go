// Package vmm is the core's libvirt layer: one supervised connection
// (reconnected with backoff when it drops), the domain operations the
// lifecycle needs, the translation of libvirt's domain lifecycle events into
// a small Go Event type (with repeated "stopped" events suppressed and
// stops missed while disconnected synthesised), and the rendering of domain
// XML from text/template files embedded per hypervisor flavour (xen, kvm,
// test), overridable by files of the same name in a configuration directory.
//
// It knows nothing about the qube model: the lifecycle fills a DomainConfig
// from a qube's properties and features, renders it, defines and starts the
// domain, and turns Events into the domain-* events of spec/core-model.md §4.
//
// Every libvirt call goes through libvirt.org/go/libvirt (cgo); the default
// URI test:///default is libvirt's in-process test driver.
package vmm
