package serial

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/iotgw/iotgw/connector"
)

// valueType is a datapoint's "type", resolved once.
type valueType uint8

const (
	typeHex valueType = iota // anything else, or absent: lower-case hex of the bytes
	typeString
	typeInt
	typeFloat
	typeBool
	typeJSON
)

func parseValueType(s string) valueType {
	switch s {
	case "string":
		return typeString
	case "int":
		return typeInt
	case "float", "double":
		return typeFloat
	case "bool":
		return typeBool
	case "json":
		return typeJSON
	}
	return typeHex
}

func (t valueType) String() string {
	switch t {
	case typeString:
		return "string"
	case typeInt:
		return "int"
	case typeFloat:
		return "float"
	case typeBool:
		return "bool"
	case typeJSON:
		return "json"
	}
	return "hex"
}

// field says where a value is in a frame and how to read it: a telemetry or attribute
// datapoint, or an RPC response. It is compiled once from the configuration.
type field struct {
	typ          valueType
	fromDelim    []byte // nil: not configured
	untilDelim   []byte
	useDelims    bool // fromDelim or untilDelim configured: bytes are ignored
	fromByte     int
	toByte       int
	hasFromByte  bool
	hasToByte    bool
	describeText string // for logs: how the value is located
}

// fieldKeys names the configuration keys of a field: the datapoint keys, or the
// "response..." keys of an RPC entry.
type fieldKeys struct {
	typ, until, from, fromByte, toByte string
}

var datapointKeys = fieldKeys{"type", "untilDelimiter", "fromDelimiter", "fromByte", "toByte"}
var responseKeys = fieldKeys{"responseType", "responseUntilDelimiter", "responseFromDelimiter", "responseFromByte", "responseToByte"}

// compileField reads a field from o. An empty delimiter counts as not configured, as
// in the Python converter.
func compileField(o obj, k fieldKeys) (field, error) {
	var f field
	t, _, err := o.str(k.typ)
	if err != nil {
		return f, err
	}
	f.typ = parseValueType(t)
	from, _, err := o.str(k.from)
	if err != nil {
		return f, err
	}
	until, _, err := o.str(k.until)
	if err != nil {
		return f, err
	}
	if from != "" {
		f.fromDelim = []byte(from)
	}
	if until != "" {
		f.untilDelim = []byte(until)
	}
	f.useDelims = f.fromDelim != nil || f.untilDelim != nil
	fb, hasFB, err := o.integer(k.fromByte)
	if err != nil {
		return f, err
	}
	tb, hasTB, err := o.integer(k.toByte)
	if err != nil {
		return f, err
	}
	const limit = 1 << 30
	if fb > limit || fb < -limit {
		return f, o.errf(k.fromByte, "an integer within ±2^30", json.Number(strconv.FormatInt(fb, 10)))
	}
	if tb > limit || tb < -limit {
		return f, o.errf(k.toByte, "an integer within ±2^30", json.Number(strconv.FormatInt(tb, 10)))
	}
	f.fromByte, f.hasFromByte = int(fb), hasFB
	f.toByte, f.hasToByte = int(tb), hasTB
	switch {
	case f.useDelims:
		f.describeText = fmt.Sprintf("fromDelimiter %q untilDelimiter %q", from, until)
	case hasFB || hasTB:
		f.describeText = fmt.Sprintf("bytes [%s:%s]", optInt(fb, hasFB), optInt(tb, hasTB))
	default:
		f.describeText = "whole frame"
	}
	return f, nil
}

func optInt(i int64, ok bool) string {
	if !ok {
		return ""
	}
	return strconv.FormatInt(i, 10)
}

// errAbsent reports that a configured delimiter is not in the frame or the slice is
// empty: the datapoint is absent from this frame, which is not an error.
var errAbsent = errors.New("not in frame")

// extract returns the bytes of the value in frame, or errAbsent.
func (f *field) extract(frame []byte) ([]byte, error) {
	b := frame
	if f.useDelims {
		if f.fromDelim != nil {
			i := bytes.Index(b, f.fromDelim)
			if i < 0 {
				return nil, errAbsent
			}
			b = b[i+len(f.fromDelim):]
		}
		if f.untilDelim != nil {
			i := bytes.Index(b, f.untilDelim)
			if i < 0 {
				return nil, errAbsent
			}
			b = b[:i]
		}
	} else if f.hasFromByte || f.hasToByte {
		b = pySlice(b, f.fromByte, f.hasFromByte, f.toByte, f.hasToByte)
	}
	if len(b) == 0 {
		return nil, errAbsent
	}
	return b, nil
}

// pySlice is b[from:to] with Python's meaning: negative indices count from the end,
// out-of-range indices clamp, an absent index is the start or the end.
func pySlice(b []byte, from int, hasFrom bool, to int, hasTo bool) []byte {
	n := len(b)
	lo, hi := 0, n
	if hasFrom {
		lo = clampIndex(from, n)
	}
	if hasTo {
		hi = clampIndex(to, n)
	}
	if lo >= hi {
		return b[:0]
	}
	return b[lo:hi]
}

func clampIndex(i, n int) int {
	if i < 0 {
		i += n
		if i < 0 {
			return 0
		}
		return i
	}
	if i > n {
		return n
	}
	return i
}

// parse converts the extracted bytes to a value of the field's type. An error means
// the bytes do not parse; errAbsent means the value is empty after trimming.
func (f *field) parse(b []byte) (connector.Value, error) {
	switch f.typ {
	case typeString:
		if !utf8.Valid(b) {
			return connector.Value{}, errors.New("invalid UTF-8")
		}
		t := bytes.TrimSpace(b)
		if len(t) == 0 {
			return connector.Value{}, errAbsent
		}
		return connector.String(string(t)), nil
	case typeInt:
		return parseInt(bytes.TrimSpace(b))
	case typeFloat:
		t := bytes.TrimSpace(b)
		// string(t) in a call does not escape, so it does not allocate for short text.
		v, err := strconv.ParseFloat(string(t), 64)
		if err != nil || !isDecimalFloat(t) || math.IsNaN(v) || math.IsInf(v, 0) {
			return connector.Value{}, fmt.Errorf("not a number: %q", t)
		}
		return connector.Float(v), nil
	case typeBool:
		t := bytes.TrimSpace(b)
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return connector.Bool(i != 0), nil
		}
		if isAllDigits(t) { // an integer too large for int64 is not zero
			return connector.Bool(true), nil
		}
		switch {
		case bytes.EqualFold(t, []byte("true")):
			return connector.Bool(true), nil
		case bytes.EqualFold(t, []byte("false")):
			return connector.Bool(false), nil
		}
		return connector.Value{}, fmt.Errorf("not a bool (an integer, true or false): %q", t)
	case typeJSON:
		t := bytes.TrimSpace(b)
		if !json.Valid(t) {
			return connector.Value{}, fmt.Errorf("invalid JSON: %q", t)
		}
		return connector.RawJSON(string(t)), nil
	}
	return connector.String(hex.EncodeToString(b)), nil
}

// parseInt reads a decimal integer (an optional sign, digits). One beyond int64 is
// sent as a JSON number, exactly as written.
func parseInt(t []byte) (connector.Value, error) {
	i, err := strconv.ParseInt(string(t), 10, 64)
	if err == nil {
		return connector.Int(i), nil
	}
	var ne *strconv.NumError
	if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
		// Keep only a plain JSON integer: no '+', no leading zeros issues matter to JSON.
		s := strings.TrimPrefix(string(t), "+")
		if json.Valid([]byte(s)) {
			return connector.RawJSON(s), nil
		}
	}
	return connector.Value{}, fmt.Errorf("not an integer: %q", t)
}

// isDecimalFloat rejects what strconv.ParseFloat accepts but a device's number text
// never means: hexadecimal floats and underscores. (inf and nan are rejected by the
// caller: JSON has no form for them.)
func isDecimalFloat(t []byte) bool {
	for _, c := range t {
		if c == '_' || c == 'x' || c == 'X' || c == 'p' || c == 'P' {
			return false
		}
	}
	return true
}

func isAllDigits(t []byte) bool {
	if len(t) > 0 && (t[0] == '+' || t[0] == '-') {
		t = t[1:]
	}
	if len(t) == 0 {
		return false
	}
	for _, c := range t {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
