package extension

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestValuesRoundTrip(t *testing.T) {
	in := []any{
		nil, "", "str", Qube("work"), true, false, int64(-3), 1.5, []byte("raw"), []byte{},
		[]any{"a", int64(1), nil, []any{Qube("q")}},
		[]KV{{"z", "last-first"}, {"a", int64(2)}, {"m", []KV{{"inner", true}}}},
	}
	m, err := valuesToProto(in)
	if err != nil {
		t.Fatal(err)
	}
	if out := valuesFromProto(m); !reflect.DeepEqual(out, in) {
		t.Errorf("round trip:\n got %#v\nwant %#v", out, in)
	}
}

func TestValueConversions(t *testing.T) {
	for in, want := range map[any]any{
		int(7): int64(7), int8(-8): int64(-8), int16(9): int64(9), int32(10): int64(10),
		uint(11): int64(11), uint8(12): int64(12), uint16(13): int64(13), uint32(14): int64(14), uint64(15): int64(15),
		float32(0.5): 0.5,
	} {
		m, err := valueToProto(in)
		if err != nil {
			t.Errorf("%T: %v", in, err)
			continue
		}
		if got := valueFromProto(m); got != want {
			t.Errorf("%T %v came back as %#v", in, in, got)
		}
	}
	m, err := valueToProto([]string{"a", "b"})
	if err != nil || !reflect.DeepEqual(valueFromProto(m), []any{"a", "b"}) {
		t.Errorf("[]string: %v", err)
	}
	if _, err := valueToProto(uint64(math.MaxUint64)); !errors.Is(err, ErrInvalid) {
		t.Errorf("uint64 overflow: %v", err)
	}
	for _, bad := range []any{struct{}{}, map[string]string{}, []int{1}, &Error{}} {
		if _, err := valueToProto(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%T accepted: %v", bad, err)
		}
	}
	if _, err := kvsToProto([]KV{{"ok", 1}, {"bad", []any{struct{}{}}}}); err == nil {
		t.Error("a nested bad value was accepted")
	}
	if valueFromProto(nil) != nil {
		t.Error("a nil Value is not nil")
	}
}

func TestText(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{nil, ""}, {"s", "s"}, {Qube("work"), "work"}, {true, "True"}, {false, "False"},
		{int64(-4), "-4"}, {1.25, "1.25"}, {[]byte("b"), "b"},
		{[]any{"a", nil, int64(1)}, "['a', None, 1]"},
		{[]string{"x"}, "['x']"},
		{[]KV{{"k", "v"}, {"n", int64(2)}}, "{'k': 'v', 'n': 2}"},
	} {
		if got := Text(c.v); got != c.want {
			t.Errorf("Text(%#v) = %q, want %q", c.v, got, c.want)
		}
	}
	e := Event{Kwargs: []KV{{"feature", "hello"}, {"value", int64(1)}}}
	if e.Str("feature") != "hello" || e.Str("value") != "1" || e.Str("absent") != "" {
		t.Errorf("Event.Str: %q %q", e.Str("feature"), e.Str("value"))
	}
	if _, ok := e.Arg("absent"); ok {
		t.Error("Arg found an absent kwarg")
	}
}
