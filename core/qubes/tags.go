package qubes

import (
	"slices"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
)

// Tags are a qube's set of labels for policy and grouping. Order is
// insertion order, which is the order in qubes.xml.
type Tags struct {
	q    *Qube
	list []string
}

// ValidateTag checks a tag name: non-empty, ASCII letters, digits, '_' and
// '-' only.
func ValidateTag(tag string) error {
	if tag == "" {
		return qerr.New(qerr.InvalidTag, "empty tag")
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return qerr.New(qerr.InvalidTag, "disallowed characters")
		}
	}
	return nil
}

// Has reports whether the tag is set.
func (t *Tags) Has(tag string) bool { return slices.Contains(t.list, tag) }

// All returns the tags in order. The slice must not be changed.
func (t *Tags) All() []string { return t.list }

// Len returns the number of tags.
func (t *Tags) Len() int { return len(t.list) }

// Add adds a tag and fires domain-tag-add:TAG; adding a tag that is already
// set does nothing and fires nothing.
func (t *Tags) Add(tag string) error {
	if err := ValidateTag(tag); err != nil {
		return err
	}
	if t.Has(tag) {
		return nil
	}
	t.list = append(t.list, tag)
	return t.q.FireEvent("domain-tag-add:"+tag, false, events.KV{Key: "tag", Value: tag})
}

// Remove removes a tag and fires domain-tag-delete:TAG.
func (t *Tags) Remove(tag string) error {
	i := slices.Index(t.list, tag)
	if i < 0 {
		return qerr.New(qerr.TagNotFound, "Tag not set for domain %s: %s", t.q.name, tag)
	}
	t.list = slices.Delete(t.list, i, i+1)
	return t.q.FireEvent("domain-tag-delete:"+tag, false, events.KV{Key: "tag", Value: tag})
}

// Discard removes a tag if it is set.
func (t *Tags) Discard(tag string) error {
	if !t.Has(tag) {
		return nil
	}
	return t.Remove(tag)
}
