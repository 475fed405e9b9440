// Package store reads and writes qubes.xml, the file that holds every qube,
// label, storage pool record and global property of the system.
//
// The package knows the file format and how to keep it safe on disk; it knows
// nothing of what the records mean. core/qubes turns a Document into the live
// model and back.
//
//   - Decode/Encode convert between the bytes of qubes.xml and a Document.
//     Encode writes exactly what the reference implementation writes, so a
//     file it wrote round-trips byte for byte.
//   - Store owns one qubes.xml on disk: an exclusive lock against a second
//     daemon, atomic saves (temp file, fsync, rename, fsync of the directory),
//     the last good generations kept beside it, and a fallback to the newest
//     good generation when the file does not parse.
//   - Committer groups concurrent saves: every caller returns only once a save
//     that contains its change is durable, and callers that arrive while a
//     save is running share the next one.
package store

// Document is the content of qubes.xml: every record in file order.
type Document struct {
	Labels     []Label
	Pools      []Pool
	Properties []Property // global properties, <qubes><properties>
	Domains    []Domain
}

// Label is <label id="label-1" color="0xcc0000">red</label>.
type Label struct {
	ID    string
	Color string
	Name  string
}

// Attr is one XML attribute; slices of Attr keep the order of the file.
type Attr struct {
	Name  string
	Value string
}

// Pool is <pool name=".." driver=".." .../>: the attributes as written.
type Pool struct {
	Attrs []Attr
}

// Property is <property name="n">value</property>. An empty element reads as
// Value "" (the reference reads it as None; core/qubes decides what that
// means for each property). The legacy form <property name="n" ref="v"/>
// reads as Value "v".
type Property struct {
	Name  string
	Value string
}

// Feature is <feature name="k">value</feature>.
type Feature struct {
	Name  string
	Value string
}

// Domain is one <domain id=".." class="..">.
type Domain struct {
	ID         string // the id attribute as written ("domain-<qid>"); not used for lookup
	Class      string
	Properties []Property
	Features   []Feature
	Tags       []string
	// Devices holds one <devices class=".."> element per device class, in
	// file order, kept as a generic tree until core/devices gives them
	// meaning.
	Devices []*Node
	// VolumeConfig holds the <volume .../> records; HasVolumeConfig tells a
	// missing <volume-config> (AdminVM) from an empty one.
	VolumeConfig    []Volume
	HasVolumeConfig bool
}

// Volume is <volume name=".." pool=".." .../> with its attributes as written.
type Volume struct {
	Attrs []Attr
}

// Node is a generic XML element, used for the parts of the file whose
// meaning belongs to another package (device assignments).
//
// Decode sets HasText when the element was written with an end tag rather
// than self-closed, and Text to its text up to its first child (as lxml's
// .text); a node with children gets Text "" (their indentation is not
// text), and Encode ignores the Text of a node with children.
type Node struct {
	Name     string
	Attrs    []Attr
	Text     string
	HasText  bool // <x></x> rather than <x/>
	Children []*Node
}
