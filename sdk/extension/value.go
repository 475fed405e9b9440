package extension

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	hostv1 "github.com/qubesgo/qubesd/sdk/proto/host/v1"
)

// KV is one named value: an event's keyword argument, an entry of a map
// value.
type KV struct {
	Key   string
	Value any
}

// Qube is a value that names a qube (Python: a qube object), as opposed
// to a plain string.
type Qube string

// valueToProto converts a Go value to host.v1's Value. The types are those
// the package documentation lists under "Values".
func valueToProto(v any) (*hostv1.Value, error) {
	switch v := v.(type) {
	case nil:
		return &hostv1.Value{Kind: &hostv1.Value_Null{Null: true}}, nil
	case string:
		return &hostv1.Value{Kind: &hostv1.Value_Str{Str: v}}, nil
	case Qube:
		return &hostv1.Value{Kind: &hostv1.Value_Qube{Qube: string(v)}}, nil
	case bool:
		return &hostv1.Value{Kind: &hostv1.Value_Bool{Bool: v}}, nil
	case int:
		return intValue(int64(v)), nil
	case int8:
		return intValue(int64(v)), nil
	case int16:
		return intValue(int64(v)), nil
	case int32:
		return intValue(int64(v)), nil
	case int64:
		return intValue(v), nil
	case uint:
		return uintValue(uint64(v))
	case uint8:
		return intValue(int64(v)), nil
	case uint16:
		return intValue(int64(v)), nil
	case uint32:
		return intValue(int64(v)), nil
	case uint64:
		return uintValue(v)
	case float32:
		return &hostv1.Value{Kind: &hostv1.Value_Float{Float: float64(v)}}, nil
	case float64:
		return &hostv1.Value{Kind: &hostv1.Value_Float{Float: v}}, nil
	case []byte:
		return &hostv1.Value{Kind: &hostv1.Value_Bytes{Bytes: v}}, nil
	case []string:
		items := make([]*hostv1.Value, len(v))
		for i, s := range v {
			items[i] = &hostv1.Value{Kind: &hostv1.Value_Str{Str: s}}
		}
		return &hostv1.Value{Kind: &hostv1.Value_List{List: &hostv1.ValueList{Items: items}}}, nil
	case []any:
		items, err := valuesToProto(v)
		if err != nil {
			return nil, err
		}
		return &hostv1.Value{Kind: &hostv1.Value_List{List: &hostv1.ValueList{Items: items}}}, nil
	case []KV:
		entries, err := kvsToProto(v)
		if err != nil {
			return nil, err
		}
		return &hostv1.Value{Kind: &hostv1.Value_Map{Map: &hostv1.ValueMap{Entries: entries}}}, nil
	}
	return nil, Errorf(ErrInvalid, "a value of type %T cannot cross the plugin protocol (use nil, string, extension.Qube, bool, an integer, a float, []byte, []string, []any or []extension.KV)", v)
}

func intValue(n int64) *hostv1.Value {
	return &hostv1.Value{Kind: &hostv1.Value_Int{Int: n}}
}

func uintValue(n uint64) (*hostv1.Value, error) {
	if n > math.MaxInt64 {
		return nil, Errorf(ErrInvalid, "integer %d out of the protocol's range (int64)", n)
	}
	return intValue(int64(n)), nil
}

// valueFromProto converts host.v1's Value to Go: nil, string, Qube, bool,
// int64, float64, []byte, []any (list) or []KV (map). A Value with no kind
// set is nil.
func valueFromProto(m *hostv1.Value) any {
	switch k := m.GetKind().(type) {
	case *hostv1.Value_Str:
		return k.Str
	case *hostv1.Value_Qube:
		return Qube(k.Qube)
	case *hostv1.Value_Int:
		return k.Int
	case *hostv1.Value_Bool:
		return k.Bool
	case *hostv1.Value_Float:
		return k.Float
	case *hostv1.Value_Bytes:
		if k.Bytes == nil {
			return []byte{}
		}
		return k.Bytes
	case *hostv1.Value_List:
		return valuesFromProto(k.List.GetItems())
	case *hostv1.Value_Map:
		return kvsFromProto(k.Map.GetEntries())
	}
	return nil
}

func valuesToProto(vs []any) ([]*hostv1.Value, error) {
	if len(vs) == 0 {
		return nil, nil
	}
	out := make([]*hostv1.Value, len(vs))
	for i, v := range vs {
		m, err := valueToProto(v)
		if err != nil {
			return nil, fmt.Errorf("value %d: %w", i, err)
		}
		out[i] = m
	}
	return out, nil
}

func valuesFromProto(ms []*hostv1.Value) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = valueFromProto(m)
	}
	return out
}

func kvsToProto(kvs []KV) ([]*hostv1.KeyValue, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make([]*hostv1.KeyValue, len(kvs))
	for i, kv := range kvs {
		m, err := valueToProto(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		out[i] = &hostv1.KeyValue{Key: kv.Key, Value: m}
	}
	return out, nil
}

func kvsFromProto(ms []*hostv1.KeyValue) []KV {
	if len(ms) == 0 {
		return nil
	}
	out := make([]KV, len(ms))
	for i, m := range ms {
		out[i] = KV{Key: m.GetKey(), Value: valueFromProto(m.GetValue())}
	}
	return out
}

// Text returns a value's text form, as Python's str() gives it in the
// Admin API's event stream: "" for nil, the string or qube name, "True" /
// "False", decimal numbers; a list or map in Python's notation.
func Text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case Qube:
		return string(v)
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case []byte:
		return string(v)
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = repr(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []string:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = repr(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []KV:
		parts := make([]string, len(v))
		for i, kv := range v {
			parts[i] = repr(kv.Key) + ": " + repr(kv.Value)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// repr is Text inside a list or map: strings quoted, None for nil.
func repr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case string:
		return "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
	}
	return Text(v)
}
