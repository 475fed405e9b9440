package qubes

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// Label is a colour a qube is shown with: index, 0xRRGGBB colour and name.
type Label struct {
	Index int
	Color string
	Name  string
}

// String returns the label's name: labels format as their names.
func (l *Label) String() string { return l.Name }

// Icon returns the label's application icon name.
func (l *Label) Icon() string { return "appvm-" + l.Name }

// MaxDefaultLabel is the highest index of the eight default labels; labels
// above it were created by users and can be removed.
const MaxDefaultLabel = 8

// DefaultLabels are the labels of a new system.
var DefaultLabels = []Label{
	{1, "0xcc0000", "red"},
	{2, "0xf57900", "orange"},
	{3, "0xedd400", "yellow"},
	{4, "0x73d216", "green"},
	{5, "0x555555", "gray"},
	{6, "0x3465a4", "blue"},
	{7, "0x75507b", "purple"},
	{8, "0x000000", "black"},
}

const labelSafeChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

// ValidateLabelName checks a label name from outside: non-empty, safe
// characters only, and — for a new label — not all digits (digits name
// labels by index).
func ValidateLabelName(name string, creating bool) error {
	if name == "" {
		return qerr.New(qerr.InvalidLabel, "Empty label name")
	}
	for _, c := range name {
		if !strings.ContainsRune(labelSafeChars, c) {
			return qerr.New(qerr.InvalidLabel, "Label must be in safe set: %s", labelSafeChars)
		}
	}
	if creating {
		if _, err := strconv.Atoi(name); err == nil {
			return qerr.New(qerr.InvalidLabel, "Label must not be a digit")
		}
	}
	return nil
}

// ValidateLabelColor checks a colour given as 0xRRGGBB.
func ValidateLabelColor(color string) error {
	if len(color) != 8 {
		return qerr.New(qerr.InvalidLabelValue, "Label value must have length of 8")
	}
	if !strings.HasPrefix(color, "0x") {
		return qerr.New(qerr.InvalidLabelValue, "Label value must start with '0x'")
	}
	const hex = "0123456789abcdefABCDEF"
	for _, c := range color[2:] {
		if !strings.ContainsRune(hex, c) {
			return qerr.New(qerr.InvalidLabelValue, "Label value must only contain hexadecimal digits after prefix: %s", hex)
		}
	}
	return nil
}

// Labels returns the labels by index.
func (a *App) Labels() []*Label { return a.labels }

// Label finds a label the way the reference does: by index, then by name,
// then by a decimal index given as text; "label-N" means index N.
func (a *App) Label(key string) (*Label, error) {
	if rest, ok := strings.CutPrefix(key, "label-"); ok {
		if n, err := strconv.Atoi(rest); err == nil {
			if l := a.labelByIndex(n); l != nil {
				return l, nil
			}
			return nil, qerr.New(qerr.LabelNotFound, "Label does not exist: %d", n)
		}
	}
	for _, l := range a.labels {
		if l.Name == key {
			return l, nil
		}
	}
	if n, err := strconv.Atoi(key); err == nil {
		if l := a.labelByIndex(n); l != nil {
			return l, nil
		}
	}
	return nil, qerr.New(qerr.LabelNotFound, "Label does not exist: %s", key)
}

func (a *App) labelByIndex(i int) *Label {
	for _, l := range a.labels {
		if l.Index == i {
			return l
		}
	}
	return nil
}

// addLabel inserts a label keeping index order.
func (a *App) addLabel(l *Label) error {
	if a.labelByIndex(l.Index) != nil {
		return fmt.Errorf("duplicate label index %d", l.Index)
	}
	for _, o := range a.labels {
		if o.Name == l.Name {
			return qerr.New(qerr.LabelInUse, "Label is still in use: %s", property.PyRepr(l.Name))
		}
	}
	i := 0
	for i < len(a.labels) && a.labels[i].Index < l.Index {
		i++
	}
	a.labels = append(a.labels[:i], append([]*Label{l}, a.labels[i:]...)...)
	return nil
}

// CreateLabel adds a user label with the next free index above the default
// ones and fires label-add.
func (a *App) CreateLabel(name, color string) (*Label, error) {
	if err := ValidateLabelName(name, true); err != nil {
		return nil, err
	}
	if err := ValidateLabelColor(color); err != nil {
		return nil, err
	}
	idx := MaxDefaultLabel + 1
	for _, l := range a.labels {
		if l.Index >= idx {
			idx = l.Index + 1
		}
	}
	l := &Label{Index: idx, Color: strings.ToLower(color), Name: name}
	if err := a.addLabel(l); err != nil {
		return nil, err
	}
	return l, nil
}

// RemoveLabel removes a user label that no qube uses.
func (a *App) RemoveLabel(name string) error {
	l, err := a.Label(name)
	if err != nil {
		return err
	}
	if l.Index <= MaxDefaultLabel {
		return qerr.New(qerr.ProtocolError, "Can only remove custom labels")
	}
	var users []string
	for _, q := range a.Qubes() {
		if q.label() == l {
			users = append(users, q.name)
		}
	}
	if len(users) > 0 {
		return qerr.New(qerr.LabelInUse, "Label is still in use: %s (by %s)", property.PyRepr(name), strings.Join(users, ", "))
	}
	for i, o := range a.labels {
		if o == l {
			a.labels = append(a.labels[:i], a.labels[i+1:]...)
			break
		}
	}
	return nil
}
