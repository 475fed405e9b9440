package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/sdk/admin"
)

func TestFormatTable(t *testing.T) {
	// Cases from the Python tools' tests (output of `column -t`).
	got := formatTable([][]string{
		{"NAME", "STATE", "CLASS", "LABEL", "TEMPLATE", "NETVM"},
		{"dom0", "Running", "TestVM", "black", "-", "-"},
		{"test-vm", "Running", "TestVM", "green", "template", "sys-net"},
	})
	want := "NAME     STATE    CLASS   LABEL  TEMPLATE  NETVM\n" +
		"dom0     Running  TestVM  black  -         -\n" +
		"test-vm  Running  TestVM  green  template  sys-net\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := formatTable([][]string{{"NAME", "STATE", "CLASS", "LABEL", "TEMPLATE", "NETVM"}}); got != "NAME  STATE  CLASS  LABEL  TEMPLATE  NETVM\n" {
		t.Errorf("header only: %q", got)
	}
	// An empty last cell still pads the columns before it, as column(1).
	if got := formatTable([][]string{{"feature1", "value1"}, {"f", ""}}); got != "feature1  value1\nf         \n" {
		t.Errorf("empty cell: %q", got)
	}
	// Width counts characters, not bytes (the tree's └─).
	if got := formatTable([][]string{{"└─a", "x"}, {"abcd", "y"}}); got != "└─a   x\nabcd  y\n" {
		t.Errorf("unicode: %q", got)
	}
	if got := formatTable(nil); got != "" {
		t.Errorf("empty table: %q", got)
	}
}

func TestWrapText(t *testing.T) {
	for _, tc := range []struct {
		text, want string
	}{
		{"short text", "  short text"},
		{"name  " + strings.Repeat("word ", 20),
			"  name  word word word word word word word word word word word word word word\n" +
				"          word word word word word word"},
		{"name  " + strings.Repeat("x", 100),
			"  name  " + strings.Repeat("x", 72) + "\n          " + strings.Repeat("x", 28)},
		{"name      ", "  name"},
		{"tabs\tand\nnewlines", "  tabs and newlines"},
	} {
		if got := wrapText(tc.text, 80, "  ", strings.Repeat(" ", 10)); got != tc.want {
			t.Errorf("wrapText(%q) =\n%q\nwant\n%q", tc.text, got, tc.want)
		}
	}
}

func TestTypedValue(t *testing.T) {
	for _, tc := range []struct {
		typ, value string
		want       string
	}{
		{"bool", "True", "true"}, {"bool", "False", "false"}, {"bool", "", "null"},
		{"int", "42", "42"}, {"int", "-1", "-1"}, {"int", "", "null"}, {"int", "x", `"x"`},
		{"vm", "", "null"}, {"vm", "sys-net", `"sys-net"`}, {"label", "red", `"red"`},
		{"str", "", `""`}, {"str", "a b", `"a b"`},
	} {
		var b bytes.Buffer
		if err := writeJSON(&b, typedValue(tc.typ, tc.value)); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(b.String()); got != tc.want {
			t.Errorf("typedValue(%s, %q) = %s, want %s", tc.typ, tc.value, got, tc.want)
		}
	}
}

func TestJSONObjectOrder(t *testing.T) {
	var b bytes.Buffer
	if err := writeJSON(&b, jsonObject{{"z", 1}, {"a", "<b>"}, {"m", nil}}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"z\": 1,\n  \"a\": \"<b>\",\n  \"m\": null\n}\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestFormatPrefs(t *testing.T) {
	entries := []prefsEntry{
		{name: "backup_timestamp", unset: true},
		{name: "label", prop: admin.Property{Type: "label", Value: "red"}},
		{name: "netvm", prop: admin.Property{IsDefault: true, Type: "vm"}},
		{name: "kernelopts", prop: admin.Property{IsDefault: true, Type: "str"}},
	}
	want := "backup_timestamp  U\n" +
		"label             -  red\n" +
		"netvm             D  None\n" +
		"kernelopts        D  \n"
	if got := formatPrefs(entries, false); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	want = "backup_timestamp  U\nlabel             -  red\n"
	if got := formatPrefs(entries, true); got != want {
		t.Errorf("hide-default: got %q, want %q", got, want)
	}
}
