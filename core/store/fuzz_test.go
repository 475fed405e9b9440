package store

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

// xmlWellFormed reports whether encoding/xml (strict) reads data to the end
// without error.
func xmlWellFormed(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// FuzzDecode checks that Decode never panics, that whatever it accepts
// encoding/xml accepts too (Decode is at least as strict), and that what it
// accepts survives Encode→Decode→Encode unchanged.
//
// Known difference, allowed below: encoding/xml checks non-ASCII name
// characters against the tables of XML 1.0 up to the fourth edition;
// Decode, like libxml2 (the reference), uses the broader ones of the fifth
// edition.
func FuzzDecode(f *testing.F) {
	for _, p := range fixtures {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add(Encode(GenerateDocument(1)))
	for _, s := range []string{
		"",
		"<qubes/>",
		"\ufeff<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE qubes>\n<qubes><!-- c --><?pi x?></qubes>\n",
		wrap(`<properties><property name="a" ref="b"/><property name="c">&amp;&#10;&#x41;</property></properties>`),
		wrap(`<domains><domain id="d" class="AppVM"><devices class="pci"><device id="x"><option name="o">v</option></device></devices><volume-config><volume a="1"/></volume-config></domain></domains>`),
		wrap(`<labels><label id="1" color="2"><![CDATA[x]]>y</label></labels>`),
		wrap("<pools><pool a='\t\n' b=\"&quot;\"/></pools>"),
		"<qubes><a:b/></qubes>",
		"<qubes>\u00e9</qubes>",
		"<qubes><x\u0300/></qubes>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Decode(data)
		if err != nil {
			return
		}
		if xerr := xmlWellFormed(data); xerr != nil {
			if !strings.Contains(xerr.Error(), "invalid XML name") || isASCII(data) {
				t.Fatalf("Decode accepted what encoding/xml rejects (%v):\n%q", xerr, data)
			}
		}
		enc := Encode(doc)
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(doc)): %v\ninput %q\nencoded %q", err, data, enc)
		}
		if !reflect.DeepEqual(back, doc) {
			t.Fatalf("Encode→Decode changed the document\ninput %q\nencoded %q\n%#v\n%#v", data, enc, doc, back)
		}
		if again := Encode(back); !bytes.Equal(again, enc) {
			t.Fatalf("Encode→Decode→Encode differs\ninput %q\n%q\n%q", data, enc, again)
		}
		if xerr := xmlWellFormed(enc); xerr != nil && isASCII(enc) {
			t.Fatalf("encoding/xml rejects what Encode wrote (%v):\n%q", xerr, enc)
		}
	})
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
