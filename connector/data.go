package connector

import (
	"encoding/json"
	"math"
	"strconv"
)

// ConvertedData is what an uplink converter makes of one message from a device:
// the device it came from, its telemetry and its attributes. It is the Go form of
// the guides' ConvertedData.
type ConvertedData struct {
	DeviceName string
	DeviceType string
	// Telemetry holds time series entries; each entry's values share one timestamp.
	Telemetry []TelemetryEntry
	// Attributes are client-side attributes of the device.
	Attributes []Datapoint
}

// AddTelemetry appends one entry at ts (milliseconds since the Unix epoch).
func (d *ConvertedData) AddTelemetry(ts int64, values ...Datapoint) {
	d.Telemetry = append(d.Telemetry, TelemetryEntry{TS: ts, Values: values})
}

// AddAttribute appends one attribute.
func (d *ConvertedData) AddAttribute(key string, v Value) {
	d.Attributes = append(d.Attributes, Datapoint{Key: key, Value: v})
}

// Empty reports whether d carries no telemetry value and no attribute.
func (d *ConvertedData) Empty() bool {
	if len(d.Attributes) > 0 {
		return false
	}
	for _, e := range d.Telemetry {
		if len(e.Values) > 0 {
			return false
		}
	}
	return true
}

// TelemetryEntry is a set of telemetry values taken at one time.
type TelemetryEntry struct {
	// TS is milliseconds since the Unix epoch; 0 means "now" to the gateway.
	TS     int64
	Values []Datapoint
}

// Datapoint is one key and its value, with the report strategy that applies to it
// below the connector level. The gateway knows the gateway's and the connector's
// strategies; a converter sets Strategy to the datapoint's own strategy, or to its
// device's when the datapoint has none (nil: the connector's or gateway's applies).
type Datapoint struct {
	Key      string
	Value    Value
	Strategy *ReportStrategy
}

// Kind is the JSON type of a Value.
type Kind uint8

// The kinds of Value.
const (
	KindNull Kind = iota
	KindString
	KindInt
	KindFloat
	KindBool
	KindJSON // raw JSON text, sent as it is
)

// Value is a telemetry or attribute value. It is a small struct rather than an
// interface so that converters on the hot path make values without allocating.
// The zero Value is JSON null.
type Value struct {
	kind Kind
	s    string // KindString text, KindJSON text
	i    int64  // KindInt, KindBool (0/1)
	f    float64
}

// String returns a string Value.
func String(s string) Value { return Value{kind: KindString, s: s} }

// Int returns an integer Value.
func Int(i int64) Value { return Value{kind: KindInt, i: i} }

// Float returns a floating-point Value. NaN and infinities are sent as null, as JSON
// has no form for them.
func Float(f float64) Value { return Value{kind: KindFloat, f: f} }

// Bool returns a boolean Value.
func Bool(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.i = 1
	}
	return v
}

// RawJSON returns a Value that is sent as the given JSON text. The text must be
// valid JSON; converters check it (json.Valid) before making the value.
func RawJSON(text string) Value { return Value{kind: KindJSON, s: text} }

// ValueOf converts a Go value as encoding/json would decode it (string, float64,
// json.Number, bool, nil, map, slice, and Go integer types) into a Value.
// Other values are encoded with encoding/json and kept as raw JSON.
func ValueOf(x any) Value {
	switch t := x.(type) {
	case nil:
		return Value{}
	case Value:
		return t
	case string:
		return String(t)
	case bool:
		return Bool(t)
	case int:
		return Int(int64(t))
	case int32:
		return Int(int64(t))
	case int64:
		return Int(t)
	case uint8:
		return Int(int64(t))
	case uint16:
		return Int(int64(t))
	case uint32:
		return Int(int64(t))
	case float32:
		return Float(float64(t))
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return Int(int64(t))
		}
		return Float(t)
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return Int(i)
		}
		if f, err := t.Float64(); err == nil {
			return Float(f)
		}
		return RawJSON(string(t))
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return String(err.Error())
		}
		return RawJSON(string(b))
	}
}

// Kind returns the JSON type of v.
func (v Value) Kind() Kind { return v.kind }

// Str returns the text of a string or raw JSON value, and "" for other kinds.
func (v Value) Str() string { return v.s }

// Int returns an integer value (also 0/1 for a bool), and 0 for other kinds.
func (v Value) Int() int64 { return v.i }

// Float returns a float value, an integer as a float, and 0 for other kinds.
func (v Value) Float() float64 {
	if v.kind == KindInt {
		return float64(v.i)
	}
	return v.f
}

// Bool returns a boolean value.
func (v Value) Bool() bool { return v.kind == KindBool && v.i != 0 }

// Equal reports whether two values are the same; floats within tolerance
// (ON_CHANGE uses 0.001).
func (v Value) Equal(w Value, tolerance float64) bool {
	if (v.kind == KindFloat || v.kind == KindInt) && (w.kind == KindFloat || w.kind == KindInt) {
		if v.kind == KindInt && w.kind == KindInt {
			return v.i == w.i
		}
		return math.Abs(v.Float()-w.Float()) <= tolerance
	}
	return v == w
}

// Any returns v as encoding/json would decode it: string, int64, float64, bool, nil,
// or json.RawMessage for raw JSON.
func (v Value) Any() any {
	switch v.kind {
	case KindString:
		return v.s
	case KindInt:
		return v.i
	case KindFloat:
		return v.f
	case KindBool:
		return v.i != 0
	case KindJSON:
		return json.RawMessage(v.s)
	}
	return nil
}

// AppendJSON appends v's JSON text to b. It does not allocate beyond growing b.
func (v Value) AppendJSON(b []byte) []byte {
	switch v.kind {
	case KindString:
		return AppendJSONString(b, v.s)
	case KindInt:
		return strconv.AppendInt(b, v.i, 10)
	case KindFloat:
		if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
			return append(b, "null"...)
		}
		return appendFloat(b, v.f)
	case KindBool:
		if v.i != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case KindJSON:
		return append(b, v.s...)
	}
	return append(b, "null"...)
}

// MarshalJSON implements json.Marshaler.
func (v Value) MarshalJSON() ([]byte, error) { return v.AppendJSON(nil), nil }

// UnmarshalJSON implements json.Unmarshaler.
func (v *Value) UnmarshalJSON(b []byte) error {
	var x any
	dec := json.NewDecoder(bytesReader(b))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return err
	}
	switch x.(type) {
	case map[string]any, []any:
		*v = RawJSON(string(b))
	default:
		*v = ValueOf(x)
	}
	return nil
}

// appendFloat writes a float the way encoding/json does (ES6 number formatting), so
// that 48 is "48" and 0.1 is "0.1".
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal to b, escaping as
// encoding/json does (without HTML escaping). Invalid UTF-8 becomes U+FFFD.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == 0xFFFD && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
