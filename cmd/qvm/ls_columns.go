package main

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// cell is one value of a qvm-ls table.
type cell struct {
	text string // shown; "" shows as "-"
	json any    // value in JSON output
}

func (c cell) String() string {
	if c.text == "" {
		return "-"
	}
	return c.text
}

func textCell(s string) cell {
	if s == "" {
		return cell{}
	}
	return cell{text: s, json: s}
}

func intCell(n int64) cell {
	s := strconv.FormatInt(n, 10)
	return cell{text: s, json: json.Number(s)}
}

// needs says what a column (or filter) needs fetched.
type needs uint8

const (
	needProps needs = 1 << iota
	needNetvmProps
	needVolumes
	needState
)

// column is a column of qvm-ls.
type column struct {
	head    string
	doc     string
	numeric bool     // sorted by number
	needs   needs    // data to fetch
	props   []string // properties read
	volumes []string // volumes read (nil with needVolumes: all)
	value   func(vm *lsVM, l *lsLoader) cell
}

// key is the column's name in JSON output.
func (c *column) key() string {
	return strings.ReplaceAll(strings.ToLower(c.head), "-", "_")
}

const mib = 1024 * 1024

// builtinColumns are the columns of the Python qvm-ls that are not plain
// properties, plus NAME.
var builtinColumns = map[string]*column{}

func init() {
	for _, c := range []*column{
		{head: "NAME", doc: "Name of the qube.", value: func(vm *lsVM, _ *lsLoader) cell { return textCell(vm.Name) }},
		{head: "STATE", doc: "Current power state.", value: func(vm *lsVM, _ *lsLoader) cell { return textCell(vm.State) }},
		{head: "CLASS", doc: "Class of the qube.", value: func(vm *lsVM, _ *lsLoader) cell { return textCell(vm.Class) }},
		{head: "GATEWAY", doc: "Network gateway.", needs: needProps | needNetvmProps, props: []string{"netvm", "gateway"},
			value: func(vm *lsVM, l *lsLoader) cell {
				p, ok := vm.prop("netvm")
				if !ok || p.Value == "" || l.byName[p.Value] == nil {
					return cell{}
				}
				g, _ := l.byName[p.Value].prop("gateway")
				return textCell(g.Value)
			}},
		{head: "MEMORY", doc: "Memory currently used by VM", numeric: true, needs: needState,
			value: func(vm *lsVM, _ *lsLoader) cell {
				if !vm.running() || vm.state == nil {
					return cell{}
				}
				return intCell(vm.state.Mem / 1024)
			}},
		{head: "DISK", doc: "Total disk utilisation.", numeric: true, needs: needVolumes,
			value: func(vm *lsVM, _ *lsLoader) cell {
				var sum int64
				for _, v := range vm.vols {
					sum += v.Usage
				}
				return intCell(sum / mib)
			}},
		{head: "FLAGS", doc: "Various flags: type, power state, updateable, provides_network, installed_by_rpm, internal, debug, autostart.",
			needs: needProps, props: []string{"virt_mode", "updateable", "provides_network", "installed_by_rpm", "internal", "debug", "autostart"},
			value: func(vm *lsVM, _ *lsLoader) cell { return textCell(flags(vm)) }},
	} {
		builtinColumns[c.head] = c
	}
	for _, vol := range []struct{ prefix, name, doc string }{
		{"PRIV", "private", "private image (/home, /usr/local)"},
		{"ROOT", "root", "root image (/usr, /lib, /etc, ...)"},
	} {
		name := vol.name
		for _, c := range []*column{
			{head: vol.prefix + "-CURR", doc: "Disk utilisation by " + vol.doc + ".", numeric: true,
				value: func(vm *lsVM, _ *lsLoader) cell { return intCell(vm.vols[name].Usage / mib) }},
			{head: vol.prefix + "-MAX", doc: "Maximum available space for " + strings.Split(vol.doc, " (")[0] + ".", numeric: true,
				value: func(vm *lsVM, _ *lsLoader) cell { return intCell(vm.vols[name].Size / mib) }},
			{head: vol.prefix + "-POOL", doc: "Storage pool of " + name + " volume.",
				value: func(vm *lsVM, _ *lsLoader) cell {
					if v, ok := vm.vols[name]; ok {
						return textCell(v.Pool)
					}
					return cell{}
				}},
			{head: vol.prefix + "-USED", doc: "Disk utilisation by " + strings.Split(vol.doc, " (")[0] + " as a percentage of available space.", numeric: true,
				value: func(vm *lsVM, _ *lsLoader) cell {
					v := vm.vols[name]
					size, usage := v.Size/mib, v.Usage/mib
					if size == 0 {
						return intCell(0)
					}
					s := strconv.FormatInt(usage*100/size, 10) + "%"
					return cell{text: s, json: s}
				}},
		} {
			c.needs = needVolumes
			c.volumes = []string{name}
			builtinColumns[c.head] = c
		}
	}
}

// flags computes the FLAGS column as the Python qvm-ls does.
func flags(vm *lsVM) string {
	typ, ok := map[string]byte{"AdminVM": '0', "TemplateVM": 't', "AppVM": 'a', "StandaloneVM": 's', "DispVM": 'd'}[vm.Class]
	if !ok {
		typ = '-'
	}
	if p, _ := vm.prop("virt_mode"); typ != '0' && typ != '-' && p.Value == "hvm" {
		typ -= 'a' - 'A'
	}
	power := byte('-')
	switch s := strings.ToLower(vm.State); s {
	case "running", "transient", "paused", "suspended", "halting", "dying", "crashed":
		power = s[0]
	case "unknown":
		power = '?'
	}
	b := []byte{typ, power}
	for _, f := range []struct {
		prop   string
		letter byte
	}{
		{"updateable", 'U'}, {"provides_network", 'N'}, {"installed_by_rpm", 'R'},
		{"internal", 'i'}, {"debug", 'D'}, {"autostart", 'A'},
	} {
		if p, _ := vm.prop(f.prop); p.Value == "True" {
			b = append(b, f.letter)
		} else {
			b = append(b, '-')
		}
	}
	return string(b)
}

// lookupColumn returns the column for a --fields entry: a built-in column,
// or else a property (qvm-ls takes any unknown column for a property).
func lookupColumn(field string) *column {
	field = strings.TrimSpace(field)
	head := strings.ToUpper(strings.ReplaceAll(field, "_", "-"))
	if c, ok := builtinColumns[head]; ok {
		return c
	}
	attr := strings.ToLower(strings.ReplaceAll(field, "-", "_"))
	return &column{
		head:    head,
		numeric: slices.Contains(numericProperties, head),
		needs:   needProps,
		props:   []string{attr},
		value: func(vm *lsVM, _ *lsLoader) cell {
			switch attr {
			case "name":
				return textCell(vm.Name)
			case "klass":
				return textCell(vm.Class)
			}
			p, ok := vm.prop(attr)
			if !ok {
				return cell{}
			}
			if p.Value == "" {
				return cell{json: typedValue(p.Type, "")}
			}
			return cell{text: p.Value, json: typedValue(p.Type, p.Value)}
		},
	}
}

// numericProperties are the property columns qvm-ls sorts by number.
var numericProperties = []string{"XID", "MAXMEM", "QREXEC-TIMEOUT", "SHUTDOWN-TIMEOUT", "VCPUS"}

// lsFormats are qvm-ls's preset formats.
var lsFormats = map[string][]string{
	"simple":  {"name", "state", "class", "label", "template", "netvm"},
	"network": {"name", "state", "netvm", "ip", "ipback", "gateway"},
	"kernel":  {"name", "state", "class", "template", "kernel", "kernelopts"},
	"full":    {"name", "state", "class", "label", "qid", "xid", "uuid"},
	"prefs":   {"name", "label", "template", "netvm", "vcpus", "initialmem", "maxmem", "virt_mode"},
	"disk":    {"name", "state", "disk", "priv-curr", "priv-max", "priv-used", "root-curr", "root-max", "root-used"},
}
