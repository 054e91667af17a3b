package serial

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// obj is a JSON object of the connector file with the key path that leads to it, so
// that every validation error names the key, what was expected and what was found.
type obj struct {
	m    map[string]any
	path string // "devices[0]"; "" for the top level
}

// decodeObject parses JSON text into an obj, keeping numbers exact.
func decodeObject(raw []byte, path string) (obj, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return obj{}, fmt.Errorf("%sinvalid JSON: %w", pathPrefix(path), err)
	}
	m, ok := x.(map[string]any)
	if !ok {
		return obj{}, fmt.Errorf("%sexpected an object, got %s", pathPrefix(path), describe(x))
	}
	return obj{m: m, path: path}, nil
}

func pathPrefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

// key returns the full key path of k in o.
func (o obj) key(k string) string {
	if o.path == "" {
		return k
	}
	return o.path + "." + k
}

// errf makes an error about key k of o.
func (o obj) errf(k, expected string, got any) error {
	return fmt.Errorf("%s: expected %s, got %s", o.key(k), expected, describe(got))
}

// get returns the value of the first of keys that is present and not null, and the
// key it was found under.
func (o obj) get(keys ...string) (any, string, bool) {
	for _, k := range keys {
		if v, ok := o.m[k]; ok && v != nil {
			return v, k, true
		}
	}
	return nil, keys[0], false
}

func (o obj) str(keys ...string) (string, bool, error) {
	v, k, ok := o.get(keys...)
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, o.errf(k, "a string", v)
	}
	return s, true, nil
}

func (o obj) boolean(keys ...string) (bool, bool, error) {
	v, k, ok := o.get(keys...)
	if !ok {
		return false, false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, false, o.errf(k, "true or false", v)
	}
	return b, true, nil
}

// integer accepts an integral JSON number (5 or 5.0).
func (o obj) integer(keys ...string) (int64, bool, error) {
	v, k, ok := o.get(keys...)
	if !ok {
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, false, o.errf(k, "an integer", v)
	}
	if i, err := n.Int64(); err == nil {
		return i, true, nil
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false, o.errf(k, "an integer", v)
	}
	return int64(f), true, nil
}

func (o obj) number(keys ...string) (float64, bool, error) {
	v, k, ok := o.get(keys...)
	if !ok {
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, false, o.errf(k, "a number", v)
	}
	f, err := n.Float64()
	if err != nil {
		return 0, false, o.errf(k, "a number", v)
	}
	return f, true, nil
}

// array returns the elements of an array key; each element must be an object.
func (o obj) objects(keys ...string) ([]obj, error) {
	v, k, ok := o.get(keys...)
	if !ok {
		return nil, nil
	}
	a, isArr := v.([]any)
	if !isArr {
		return nil, o.errf(k, "an array of objects", v)
	}
	out := make([]obj, 0, len(a))
	for i, e := range a {
		m, isObj := e.(map[string]any)
		p := fmt.Sprintf("%s[%d]", o.key(k), i)
		if !isObj {
			return nil, fmt.Errorf("%s: expected an object, got %s", p, describe(e))
		}
		out = append(out, obj{m: m, path: p})
	}
	return out, nil
}

// describe renders a decoded JSON value for an error message.
func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(t)
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%v", v)
}
