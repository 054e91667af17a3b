package extensions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strconv"

	"go.starlark.net/starlark"

	"github.com/iotgw/iotgw/connector"
)

// maxJSONDepth bounds nesting when converting between JSON and Starlark, so that a
// self-referencing list in a script cannot loop forever.
const maxJSONDepth = 64

// jsonToStarlark decodes one JSON value into Starlark values, keeping the order of
// object keys (dicts keep insertion order), with integers as int.
func jsonToStarlark(b []byte) (starlark.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeStarlark(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: text after the value")
	}
	return v, nil
}

func decodeStarlark(dec *json.Decoder, depth int) (starlark.Value, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			d := starlark.NewDict(4)
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("invalid JSON: %w", err)
				}
				k, _ := kt.(string)
				v, err := decodeStarlark(dec, depth+1)
				if err != nil {
					return nil, err
				}
				_ = d.SetKey(starlark.String(k), v)
			}
			_, err := dec.Token() // '}'
			return d, err
		case '[':
			var elems []starlark.Value
			for dec.More() {
				v, err := decodeStarlark(dec, depth+1)
				if err != nil {
					return nil, err
				}
				elems = append(elems, v)
			}
			_, err := dec.Token() // ']'
			return starlark.NewList(elems), err
		}
		return nil, fmt.Errorf("invalid JSON: unexpected %v", t)
	default:
		return goToStarlark(t)
	}
}

// goToStarlark converts a value as encoding/json decodes it (with json.Number) into
// a Starlark value. Map keys are sorted, as Go maps have no order.
func goToStarlark(x any) (starlark.Value, error) {
	return goToStarlarkDepth(x, 0)
}

func goToStarlarkDepth(x any, depth int) (starlark.Value, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("value nested too deeply")
	}
	switch t := x.(type) {
	case nil:
		return starlark.None, nil
	case bool:
		return starlark.Bool(t), nil
	case string:
		return starlark.String(t), nil
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return starlark.MakeInt64(i), nil
		}
		if bi, ok := new(big.Int).SetString(string(t), 10); ok {
			return starlark.MakeBigInt(bi), nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", t, err)
		}
		return starlark.Float(f), nil
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return starlark.MakeInt64(int64(t)), nil
		}
		return starlark.Float(t), nil
	case int:
		return starlark.MakeInt(t), nil
	case int64:
		return starlark.MakeInt64(t), nil
	case json.RawMessage:
		return jsonToStarlark(t)
	case connector.Value:
		return goToStarlarkDepth(t.Any(), depth)
	case []any:
		elems := make([]starlark.Value, len(t))
		for i, e := range t {
			v, err := goToStarlarkDepth(e, depth+1)
			if err != nil {
				return nil, err
			}
			elems[i] = v
		}
		return starlark.NewList(elems), nil
	case map[string]any:
		d := starlark.NewDict(len(t))
		for _, k := range sortedKeys(t) {
			v, err := goToStarlarkDepth(t[k], depth+1)
			if err != nil {
				return nil, err
			}
			_ = d.SetKey(starlark.String(k), v)
		}
		return d, nil
	}
	// Anything else: through its JSON form.
	b, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("cannot pass a %T to a script: %w", x, err)
	}
	return jsonToStarlark(b)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// appendStarlarkJSON appends v as JSON text: bytes as a hex string, NaN and
// infinities as null, dicts need string keys.
func appendStarlarkJSON(b []byte, v starlark.Value, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("value nested too deeply for JSON")
	}
	switch t := v.(type) {
	case starlark.NoneType:
		return append(b, "null"...), nil
	case starlark.Bool:
		return strconv.AppendBool(b, bool(t)), nil
	case starlark.Int:
		return append(b, t.String()...), nil
	case starlark.Float:
		return connector.Float(float64(t)).AppendJSON(b), nil
	case starlark.String:
		return connector.AppendJSONString(b, string(t)), nil
	case starlark.Bytes:
		return connector.AppendJSONString(b, fmt.Sprintf("%x", string(t))), nil
	case *starlark.Dict:
		b = append(b, '{')
		for i, item := range t.Items() {
			k, ok := item[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("dict key %s is not a string", item[0].String())
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = connector.AppendJSONString(b, string(k))
			b = append(b, ':')
			var err error
			if b, err = appendStarlarkJSON(b, item[1], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case starlark.Iterable:
		b = append(b, '[')
		it := t.Iterate()
		defer it.Done()
		var e starlark.Value
		for i := 0; it.Next(&e); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendStarlarkJSON(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	return nil, fmt.Errorf("a %s has no JSON form", v.Type())
}
