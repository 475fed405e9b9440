package admin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Property is a property value as admin.vm.property.Get and
// admin.property.Get report it: "default=<True|False> type=<t> <value>".
type Property struct {
	Name string
	// IsDefault is true when the property has no value of its own and
	// reports its default.
	IsDefault bool
	// Type is the wire type: "str", "int", "bool", "vm" or "label".
	Type string
	// Value is the value as text: a qube or label by name, a bool as
	// "True"/"False". It is "" when the property has no value (a vm
	// property set to none, an int or bool without a default).
	Value string
}

// Wire types of properties.
const (
	PropStr   = "str"
	PropInt   = "int"
	PropBool  = "bool"
	PropVM    = "vm"
	PropLabel = "label"
)

// Bool returns the value of a bool property. An empty value (no value, no
// default) is an error.
func (p Property) Bool() (bool, error) {
	switch p.Value {
	case "True":
		return true, nil
	case "False":
		return false, nil
	}
	return false, fmt.Errorf("property %s: %q is not a bool", p.Name, p.Value)
}

// Int returns the value of an int property. An empty value is an error.
func (p Property) Int() (int64, error) {
	n, err := strconv.ParseInt(p.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("property %s: %q is not an int", p.Name, p.Value)
	}
	return n, nil
}

// parseProperty parses "default=X type=T value".
func parseProperty(name, s string) (Property, error) {
	def, rest, ok1 := strings.Cut(s, " ")
	typ, value, _ := strings.Cut(rest, " ")
	isDef, ok2 := strings.CutPrefix(def, "default=")
	typ, ok3 := strings.CutPrefix(typ, "type=")
	if !ok1 || !ok2 || !ok3 || (isDef != "True" && isDef != "False") {
		return Property{}, fmt.Errorf("%w: property %s: %q", ErrMalformedReply, name, s)
	}
	return Property{Name: name, IsDefault: isDef == "True", Type: typ, Value: value}, nil
}

// parseTypeValue parses "type=T value" (GetDefault).
func parseTypeValue(name, s string) (Property, error) {
	typ, value, _ := strings.Cut(s, " ")
	typ, ok := strings.CutPrefix(typ, "type=")
	if !ok {
		return Property{}, fmt.Errorf("%w: default of %s: %q", ErrMalformedReply, name, s)
	}
	return Property{Name: name, IsDefault: true, Type: typ, Value: value}, nil
}

// unescapeGetAll undoes the escaping of GetAll lines: "\\" is a backslash
// and "\n" a newline.
func unescapeGetAll(line string) (string, error) {
	if !strings.Contains(line, `\`) {
		return line, nil
	}
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		if line[i] != '\\' {
			b.WriteByte(line[i])
			continue
		}
		i++
		switch {
		case i < len(line) && line[i] == 'n':
			b.WriteByte('\n')
		case i < len(line) && line[i] == '\\':
			b.WriteByte('\\')
		default:
			return "", fmt.Errorf("%w: bad escape in %q", ErrMalformedReply, line)
		}
	}
	return b.String(), nil
}

// parseGetAll parses "name default=X type=T value\n" lines.
func parseGetAll(method string, body []byte) ([]Property, error) {
	return parseGetAllText(method, string(body))
}

// parseGetAllText is parseGetAll on text; the properties' strings share it.
func parseGetAllText(method, body string) ([]Property, error) {
	props := make([]Property, 0, strings.Count(body, "\n"))
	for line := range strings.SplitSeq(body, "\n") {
		if line == "" {
			continue
		}
		line, err := unescapeGetAll(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		name, rest, _ := strings.Cut(line, " ")
		p, err := parseProperty(name, rest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		props = append(props, p)
	}
	return props, nil
}

// propertyAPI is the method prefix and destination of a property holder.
type propertyAPI struct {
	prefix, dest string
}

func vmProps(vm string) propertyAPI { return propertyAPI{"admin.vm.property.", vm} }

var globalProps = propertyAPI{"admin.property.", AdminVM}

func (c *Client) propGet(ctx context.Context, h propertyAPI, name string) (Property, error) {
	body, err := c.Call(ctx, h.prefix+"Get", h.dest, name, nil)
	if err != nil {
		return Property{}, err
	}
	p, err := parseProperty(name, string(body))
	if err != nil {
		return Property{}, fmt.Errorf("%sGet: %w", h.prefix, err)
	}
	return p, nil
}

func (c *Client) propGetAll(ctx context.Context, h propertyAPI) ([]Property, error) {
	body, err := c.Call(ctx, h.prefix+"GetAll", h.dest, "", nil)
	if err != nil {
		return nil, err
	}
	return parseGetAll(h.prefix+"GetAll", body)
}

func (c *Client) propDefault(ctx context.Context, h propertyAPI, name string) (Property, bool, error) {
	body, err := c.Call(ctx, h.prefix+"GetDefault", h.dest, name, nil)
	if err != nil || len(body) == 0 {
		return Property{}, false, err
	}
	p, err := parseTypeValue(name, string(body))
	if err != nil {
		return Property{}, false, fmt.Errorf("%sGetDefault: %w", h.prefix, err)
	}
	return p, true, nil
}

func (c *Client) propHelp(ctx context.Context, h propertyAPI, name string) (string, error) {
	body, err := c.Call(ctx, h.prefix+"Help", h.dest, name, nil)
	return string(body), err
}

func (c *Client) propSet(ctx context.Context, h propertyAPI, name, value string) error {
	_, err := c.Call(ctx, h.prefix+"Set", h.dest, name, []byte(value))
	return err
}

func (c *Client) propReset(ctx context.Context, h propertyAPI, name string) error {
	_, err := c.Call(ctx, h.prefix+"Reset", h.dest, name, nil)
	return err
}

// Property returns property name of vm (admin.vm.property.Get). An unknown
// property gives QubesNoSuchPropertyError.
func (c *Client) Property(ctx context.Context, vm, name string) (Property, error) {
	return c.propGet(ctx, vmProps(vm), name)
}

// Properties returns every property of vm with one call
// (admin.vm.property.GetAll), in the daemon's order.
func (c *Client) Properties(ctx context.Context, vm string) ([]Property, error) {
	return c.propGetAll(ctx, vmProps(vm))
}

// PropertyNames returns the names of the properties of vm
// (admin.vm.property.List), in the daemon's order.
func (c *Client) PropertyNames(ctx context.Context, vm string) ([]string, error) {
	return c.list(ctx, "admin.vm.property.List", vm, "")
}

// PropertyDefault returns the value property name of vm would have if it
// were reset (admin.vm.property.GetDefault: "type=T value"). ok is false if
// the property has no default (an empty reply body).
func (c *Client) PropertyDefault(ctx context.Context, vm, name string) (p Property, ok bool, err error) {
	return c.propDefault(ctx, vmProps(vm), name)
}

// PropertyHelp returns the description of property name of vm
// (admin.vm.property.Help).
func (c *Client) PropertyHelp(ctx context.Context, vm, name string) (string, error) {
	return c.propHelp(ctx, vmProps(vm), name)
}

// SetProperty sets property name of vm to value (admin.vm.property.Set). A
// qube is given by name; "" clears a vm property.
func (c *Client) SetProperty(ctx context.Context, vm, name, value string) error {
	return c.propSet(ctx, vmProps(vm), name, value)
}

// ResetProperty resets property name of vm to its default
// (admin.vm.property.Reset).
func (c *Client) ResetProperty(ctx context.Context, vm, name string) error {
	return c.propReset(ctx, vmProps(vm), name)
}

// GlobalProperty returns the global property name (admin.property.Get).
func (c *Client) GlobalProperty(ctx context.Context, name string) (Property, error) {
	return c.propGet(ctx, globalProps, name)
}

// GlobalProperties returns every global property with one call
// (admin.property.GetAll).
func (c *Client) GlobalProperties(ctx context.Context) ([]Property, error) {
	return c.propGetAll(ctx, globalProps)
}

// GlobalPropertyNames returns the names of the global properties
// (admin.property.List).
func (c *Client) GlobalPropertyNames(ctx context.Context) ([]string, error) {
	return c.list(ctx, "admin.property.List", AdminVM, "")
}

// GlobalPropertyDefault returns the default of global property name
// (admin.property.GetDefault); ok is false if it has none.
func (c *Client) GlobalPropertyDefault(ctx context.Context, name string) (p Property, ok bool, err error) {
	return c.propDefault(ctx, globalProps, name)
}

// GlobalPropertyHelp returns the description of global property name
// (admin.property.Help).
func (c *Client) GlobalPropertyHelp(ctx context.Context, name string) (string, error) {
	return c.propHelp(ctx, globalProps, name)
}

// SetGlobalProperty sets global property name to value
// (admin.property.Set).
func (c *Client) SetGlobalProperty(ctx context.Context, name, value string) error {
	return c.propSet(ctx, globalProps, name, value)
}

// ResetGlobalProperty resets global property name to its default
// (admin.property.Reset).
func (c *Client) ResetGlobalProperty(ctx context.Context, name string) error {
	return c.propReset(ctx, globalProps, name)
}
