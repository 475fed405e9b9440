package store

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fixtures written by the reference implementation (copies of
// shared/fixtures/qubes-n10.xml and
// shared/fixtures/admin-api/public-n10-mutate-qubes-after.xml).
var fixtures = []string{
	"testdata/qubes-n10.xml",
	"testdata/qubes-n10-mutated.xml",
}

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return data
}

func TestFixtureRoundTrip(t *testing.T) {
	for _, path := range fixtures {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data := readFixture(t, path)
			doc, err := Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(doc.Labels) != 8 || len(doc.Pools) != 2 || len(doc.Domains) != 14 {
				t.Fatalf("decoded %d labels, %d pools, %d domains; want 8, 2, 14",
					len(doc.Labels), len(doc.Pools), len(doc.Domains))
			}
			got := Encode(doc)
			if !bytes.Equal(got, data) {
				t.Fatalf("Encode(Decode(fixture)) differs from the fixture:\n%s", firstDiff(got, data))
			}
			var buf bytes.Buffer
			buf.WriteString("prefix")
			EncodeTo(&buf, doc)
			if !bytes.Equal(buf.Bytes()[len("prefix"):], data) || !strings.HasPrefix(buf.String(), "prefix") {
				t.Fatal("EncodeTo differs from Encode")
			}
		})
	}
}

func TestFixtureContent(t *testing.T) {
	doc, err := Decode(readFixture(t, fixtures[1]))
	if err != nil {
		t.Fatal(err)
	}
	if d := doc.Domains[0]; d.Class != "AdminVM" || d.ID != "domain-0" || d.HasVolumeConfig || len(d.Devices) != 0 ||
		!reflect.DeepEqual(d.Tags, []string{"dom0-tag"}) {
		t.Errorf("dom0 = %+v", d)
	}
	var vm0001 *Domain
	for i := range doc.Domains {
		for _, p := range doc.Domains[i].Properties {
			if p.Name == "name" && p.Value == "vm0001" {
				vm0001 = &doc.Domains[i]
			}
		}
	}
	if vm0001 == nil {
		t.Fatal("vm0001 not found")
	}
	wantFeatures := []Feature{{"baseline-index", "1"}, {"service.cups", "1"}, {"empty-value", ""}}
	if !reflect.DeepEqual(vm0001.Features, wantFeatures) {
		t.Errorf("vm0001 features = %v, want %v", vm0001.Features, wantFeatures)
	}
	if !vm0001.HasVolumeConfig || len(vm0001.VolumeConfig) != 4 {
		t.Errorf("vm0001 volumes = %v", vm0001.VolumeConfig)
	}
	if got := attrValue(vm0001.VolumeConfig[2].Attrs, "ephemeral"); got != "True" {
		t.Errorf("volatile ephemeral = %q", got)
	}
	if len(vm0001.Devices) != 1 || vm0001.Devices[0].Name != "devices" || attrValue(vm0001.Devices[0].Attrs, "class") != "pci" {
		t.Errorf("vm0001 devices = %+v", vm0001.Devices)
	}
}

// TestGenerateMatchesFixture checks that GenerateDocument(10) is the fixture
// but for the UUIDs.
func TestGenerateMatchesFixture(t *testing.T) {
	doc, err := Decode(readFixture(t, fixtures[0]))
	if err != nil {
		t.Fatal(err)
	}
	gen := GenerateDocument(10)
	for i := range doc.Domains {
		for j, p := range doc.Domains[i].Properties {
			if p.Name == "uuid" {
				gen.Domains[i].Properties[j].Value = p.Value
			}
		}
	}
	got, want := Encode(gen), Encode(doc)
	if !bytes.Equal(got, want) {
		t.Fatalf("GenerateDocument(10) differs from the fixture:\n%s", firstDiff(got, want))
	}
	if a, b := Encode(GenerateDocument(3)), Encode(GenerateDocument(3)); !bytes.Equal(a, b) {
		t.Fatal("GenerateDocument is not deterministic")
	}
}

func TestGenerated1000RoundTrip(t *testing.T) {
	doc := GenerateDocument(1000)
	if len(doc.Domains) != 1004 {
		t.Fatalf("%d domains, want 1004", len(doc.Domains))
	}
	first := Encode(doc)
	back, err := Decode(first)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, doc) {
		t.Fatal("Decode(Encode(doc)) != doc")
	}
	if second := Encode(back); !bytes.Equal(first, second) {
		t.Fatalf("Encode→Decode→Encode differs:\n%s", firstDiff(second, first))
	}
}

// wrap puts body inside <qubes>…</qubes> as the only content.
func wrap(body string) string {
	return "<qubes>\n" + body + "\n</qubes>\n"
}

func TestDecodeForms(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Document
	}{
		{
			name: "declaration, comments, PI, DOCTYPE, BOM",
			in: "\ufeff<?xml version='1.0' encoding=\"utf-8\" standalone='yes'?>\n<!-- c -->\n" +
				"<!DOCTYPE qubes SYSTEM \"qubes.dtd\">\n<?pi data?>\n<qubes><!-- inside -->" +
				"<properties><property name=\"a\">x</property></properties></qubes>\n<!-- after -->\n",
			want: &Document{Properties: []Property{{"a", "x"}}},
		},
		{
			name: "ref and self-closed properties",
			in: wrap(`<properties><property name="a" ref="v"/><property name="b"/>` +
				`<property name="c" ref="">text</property><property name="d" ref="r">text</property>` +
				`<property name="e"></property></properties>`),
			want: &Document{Properties: []Property{{"a", "v"}, {"b", ""}, {"c", "text"}, {"d", "r"}, {"e", ""}}},
		},
		{
			name: "references, CDATA, line ends",
			in: wrap("<properties><property name=\"a\">&amp;&lt;&gt;&quot;&apos;&#65;&#x42;&#x1F600;</property>" +
				"<property name=\"b\"><![CDATA[<&>]]>tail</property>" +
				"<property name=\"c\">one\r\ntwo\rthree</property>" +
				"<property name=\"d\">before<!-- c -->after</property>" +
				"<property name=\"e\">before<x>in</x>after</property></properties>"),
			want: &Document{Properties: []Property{
				{"a", "&<>\"'AB\U0001F600"}, {"b", "<&>tail"}, {"c", "one\ntwo\nthree"}, {"d", "before"}, {"e", "before"},
			}},
		},
		{
			name: "attribute normalization",
			in:   wrap("<pools><pool a='x\ty\nz\r\nw' b=\"&#9;&#10;&#13;&quot;'\" c='\"'/></pools>"),
			want: &Document{Pools: []Pool{{Attrs: []Attr{{"a", "x y z w"}, {"b", "\t\n\r\"'"}, {"c", `"`}}}}},
		},
		{
			name: "unknown elements are skipped, devices kept",
			in: wrap(`<unknown><x/></unknown><domains><other/><domain id="domain-9" class="AppVM">` +
				`<extra>t</extra><tags><tag name="t"/><nottag name="u"/></tags>` +
				`<devices class="usb"><device backend-domain="sys-usb" id="1-1"><option name="o">v</option><empty></empty></device></devices>` +
				`<volume-config/></domain></domains>`),
			want: &Document{Domains: []Domain{{
				ID: "domain-9", Class: "AppVM", Tags: []string{"t"},
				Devices: []*Node{{
					Name: "devices", Attrs: []Attr{{"class", "usb"}}, HasText: true,
					Children: []*Node{{
						Name: "device", Attrs: []Attr{{"backend-domain", "sys-usb"}, {"id", "1-1"}}, HasText: true,
						Children: []*Node{
							{Name: "option", Attrs: []Attr{{"name", "o"}}, Text: "v", HasText: true},
							{Name: "empty", HasText: true},
						},
					}},
				}},
				HasVolumeConfig: true,
			}}},
		},
		{
			name: "non-ASCII and whitespace around markup",
			in:   "<qubes >\n<labels\n><label  id = \"label-1\"\tcolor='0x1'>ča\u00e9 名前</label ></labels></qubes\n>",
			want: &Document{Labels: []Label{{"label-1", "0x1", "čaé 名前"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Decode =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	fixture := string(readFixture(t, fixtures[0]))
	tests := []struct {
		name string
		in   string
		line int
		msg  string // substring of the error
	}{
		{"empty", "", 1, "empty"},
		{"whitespace only", "\n\n  ", 3, "empty"},
		{"garbage", "this is not xml", 1, "text before the root element"},
		{"binary", "\x00\x01\x02", 1, "not allowed"},
		{"invalid UTF-8", "<qubes>\n\xff</qubes>", 2, "invalid UTF-8"},
		{"truncated fixture", fixture[:len(fixture)/2], strings.Count(fixture[:len(fixture)/2], "\n") + 1, "truncated"},
		{"truncated in tag", "<qubes>\n<labels", 2, "truncated"},
		{"truncated in attribute", "<qubes>\n<pools><pool name=\"x", 2, "truncated"},
		{"truncated before close", "<qubes>\n<labels/>\n", 3, "<qubes> opened at line 1 is not closed"},
		{"truncated comment", "<qubes><!-- x", 1, "truncated"},
		{"mismatched", "<qubes>\n<labels>\n</pools>\n</qubes>", 3, "</pools> does not match <labels> opened at line 2"},
		{"wrong root", "<domains/>", 1, "root element is <domains>"},
		{"second root", "<qubes/>\n<qubes/>", 2, "second root"},
		{"garbage after root", "<qubes/>\nxx", 2, "text after the root element"},
		{"stray end", "</qubes>", 1, "without an opening tag"},
		{"domain without class", wrap("<domains>\n<domain id=\"domain-5\"/></domains>"), 3, "<domain id=\"domain-5\"> has no class"},
		{"property without name", wrap("<properties>\n<property>x</property></properties>"), 3, "<property> has no name"},
		{"feature without name", wrap("<domains><domain class=\"AppVM\"><features>\n<feature/></features></domain></domains>"), 3, "<feature> has no name"},
		{"tag without name", wrap("<domains><domain class=\"AppVM\"><tags><tag/></tags></domain></domains>"), 2, "<tag> has no name"},
		{"label without id", wrap("<labels><label color=\"0x1\">red</label></labels>"), 2, "<label> has no id"},
		{"undefined entity", wrap("<properties><property name=\"a\">&nbsp;</property></properties>"), 2, "undefined entity &nbsp;"},
		{"bare ampersand", wrap("<properties><property name=\"a\">a & b</property></properties>"), 2, "unescaped '&'"},
		{"bad char ref", wrap("<properties><property name=\"a\">&#0;</property></properties>"), 2, "not allowed in XML"},
		{"lt in attribute", wrap("<pools><pool a=\"<\"/></pools>"), 2, "'<' in the value"},
		{"duplicate attribute", wrap("<pools><pool a=\"1\" a=\"2\"/></pools>"), 2, "appears twice"},
		{"unquoted attribute", wrap("<pools><pool a=1/></pools>"), 2, "must be quoted"},
		{"attribute without value", wrap("<pools><pool a/></pools>"), 2, "has no value"},
		{"no space between attributes", wrap("<pools><pool a=\"1\"b=\"2\"/></pools>"), 2, "missing whitespace"},
		{"double dash in comment", "<qubes><!-- a -- b --></qubes>", 1, "\"--\""},
		{"cdata end in text", wrap("a ]]> b"), 2, "\"]]>\""},
		{"late declaration", "<qubes/><?xml version=\"1.0\"?>", 1, "only allowed at the very start"},
		{"declaration after space", " <?xml version=\"1.0\"?><qubes/>", 1, "only allowed at the very start"},
		{"wrong encoding", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><qubes/>", 1, "must be UTF-8"},
		{"wrong version", "<?xml version=\"1.1\"?><qubes/>", 1, "not supported"},
		{"internal subset", "<!DOCTYPE qubes [<!ENTITY x \"y\">]><qubes/>", 1, "internal subset"},
		{"two colons", "<a:b:c/>", 1, "more than one ':'"},
		{"too deep", strings.Repeat("<qubes>", 1) + strings.Repeat("<x>", 300), 1, "nested more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", doc)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			if de.Line != tt.line || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q; want line %d and %q", err, tt.line, tt.msg)
			}
		})
	}
}

func TestEncodeEscaping(t *testing.T) {
	tricky := []string{
		"",
		`say "hi" & 'bye'`,
		"a<b>c&d",
		"line1\nline2\tcol\rcr\r\n",
		"ünïcödé ✓ 名前 \U0001F600",
		"]]>",
		"  spaces  ",
	}
	for _, v := range tricky {
		doc := &Document{
			Labels:     []Label{{ID: v, Color: v, Name: v}},
			Pools:      []Pool{{Attrs: []Attr{{"name", v}}}},
			Properties: []Property{{Name: v, Value: v}},
			Domains: []Domain{{
				ID: "domain-1", Class: "AppVM",
				Features: []Feature{{Name: v, Value: v}},
				Tags:     []string{v},
				Devices:  []*Node{{Name: "devices", Attrs: []Attr{{"class", v}}, Text: v, HasText: true}},
			}},
		}
		data := Encode(doc)
		back, err := Decode(data)
		if err != nil {
			t.Fatalf("%q: Decode(Encode) failed: %v\n%s", v, err, data)
		}
		if !reflect.DeepEqual(back, doc) {
			t.Fatalf("%q: round trip changed the document:\n%#v\n%s", v, back, data)
		}
		// encoding/xml must read the same values.
		var x struct {
			Props []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:",chardata"`
			} `xml:"properties>property"`
		}
		if err := xml.Unmarshal(data, &x); err != nil {
			t.Fatalf("%q: encoding/xml: %v", v, err)
		}
		if len(x.Props) != 1 || x.Props[0].Name != v || x.Props[0].Value != v {
			t.Fatalf("%q: encoding/xml read %+v", v, x.Props)
		}
	}
}

func TestEncodeExactForms(t *testing.T) {
	doc := &Document{
		Properties: []Property{{"p", `a"b'c&d<e>f` + "\t\n\r"}},
		Domains: []Domain{{
			ID: "domain-7", Class: "AppVM",
			Properties: []Property{{"netvm", ""}},
			Features:   []Feature{{"empty-value", ""}},
			Tags:       []string{`q"t`},
			Devices: []*Node{
				{Name: "devices", Attrs: []Attr{{"class", "pci"}}},
				{Name: "devices", Attrs: []Attr{{"class", "usb"}}, HasText: true},
				{Name: "devices", Attrs: []Attr{{"class", "block"}}, Text: "ignored", Children: []*Node{
					{Name: "device", Attrs: []Attr{{"id", "a\nb"}}, Children: []*Node{
						{Name: "option", Attrs: []Attr{{"name", "x"}}, Text: "1"},
					}},
				}},
			},
			HasVolumeConfig: true,
		}},
	}
	want := `<qubes>
  <labels/>
  <pools/>
  <properties>
    <property name="p">a"b'c&amp;d&lt;e&gt;f` + "\t\n&#13;" + `</property>
  </properties>
  <domains>
    <domain id="domain-7" class="AppVM">
      <properties>
        <property name="netvm"></property>
      </properties>
      <features>
        <feature name="empty-value"></feature>
      </features>
      <tags>
        <tag name="q&quot;t"/>
      </tags>
      <devices class="pci"/>
      <devices class="usb"></devices>
      <devices class="block">
        <device id="a&#10;b">
          <option name="x">1</option>
        </device>
      </devices>
      <volume-config/>
    </domain>
  </domains>
</qubes>
`
	if got := string(Encode(doc)); got != want {
		t.Fatalf("Encode =\n%s\nwant\n%s\n%s", got, want, firstDiff([]byte(got), []byte(want)))
	}
	if got, want := string(Encode(&Document{})), "<qubes>\n  <labels/>\n  <pools/>\n  <properties/>\n  <domains/>\n</qubes>\n"; got != want {
		t.Fatalf("Encode(empty) =\n%s\nwant\n%s", got, want)
	}
}

func TestEncodeInvalidCharacters(t *testing.T) {
	doc := &Document{Properties: []Property{{"a\x01", "b\x00c\xffd\uFFFE"}}}
	data := Encode(doc)
	back, err := Decode(data)
	if err != nil {
		t.Fatalf("Encode wrote an undecodable file: %v\n%q", err, data)
	}
	if got := back.Properties[0]; got.Name != "a\uFFFD" || got.Value != "b\uFFFDc\uFFFDd\uFFFD" {
		t.Fatalf("got %q", got)
	}
}

func TestCheck(t *testing.T) {
	good := GenerateDocument(2)
	if err := good.Check(); err != nil {
		t.Fatalf("Check(generated) = %v", err)
	}
	bad := []*Document{
		{Pools: []Pool{{Attrs: []Attr{{"bad name", "x"}}}}},
		{Pools: []Pool{{Attrs: []Attr{{"a", "x"}, {"a", "y"}}}}},
		{Domains: []Domain{{Class: "AppVM", VolumeConfig: []Volume{{Attrs: []Attr{{"", "x"}}}}}}},
		{Domains: []Domain{{Class: "AppVM", Devices: []*Node{{Name: "devices", Children: []*Node{{Name: "1x"}}}}}}},
	}
	for i, doc := range bad {
		if err := doc.Check(); err == nil {
			t.Errorf("%d: Check accepted %+v", i, doc)
		}
	}
}

// firstDiff describes where a and b first differ.
func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	line := bytes.Count(a[:i], []byte("\n")) + 1
	ctx := func(x []byte) string {
		s := max(0, i-60)
		e := min(len(x), i+60)
		return string(x[s:e])
	}
	return "first difference at byte " + strconv.Itoa(i) + " (line " + strconv.Itoa(line) + "):\n got: " + ctx(a) + "\nwant: " + ctx(b)
}
