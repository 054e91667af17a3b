package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"

	"github.com/iotgw/iotgw/connector"
	"go.yaml.in/yaml/v3"
)

// kind is the JSON type of a node.
type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kObject
	kArray
)

// node is a generic document tree, the common form of JSON and YAML files. Objects
// keep their keys in file order, so that errors and warnings come in file order.
type node struct {
	kind kind
	text string // kString: the string; kNumber: the number as written (JSON syntax)
	b    bool   // kBool
	keys []string
	vals []*node // kObject: values parallel to keys; kArray: the items
}

// utf8BOM is stripped from the start of files: Windows editors write it, and it is
// not part of the JSON text.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// parseJSON parses a JSON document into a tree. A syntax error is returned as an
// *Error that carries the line and column.
func parseJSON(file string, data []byte) (*node, *Error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	// First pass: encoding/json finds syntax errors and their offsets, and bounds the
	// nesting depth, which keeps the recursive second pass safe.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonSyntaxError(file, data, err)
	}
	if off := dec.InputOffset(); len(bytes.TrimSpace(data[off:])) > 0 {
		// Anything after the top-level value: a second value, or garbage.
		rest := data[off:]
		skip := len(rest) - len(bytes.TrimLeft(rest, " \t\r\n"))
		line, col := lineCol(data, int(off)+skip)
		return nil, &Error{File: file, Line: line, Col: col,
			Msg: "unexpected data after the top-level value"}
	}
	// Second pass: the token stream gives object keys in order.
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := tokenTree(dec)
	if err != nil {
		// Cannot happen for text the first pass accepted; report it rather than panic.
		return nil, &Error{File: file, Msg: "invalid JSON: " + err.Error(), Err: err}
	}
	return n, nil
}

// tokenTree reads one value from dec's token stream.
func tokenTree(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &node{kind: kNull}, nil
	case bool:
		return &node{kind: kBool, b: t}, nil
	case json.Number:
		return &node{kind: kNumber, text: string(t)}, nil
	case string:
		return &node{kind: kString, text: t}, nil
	case json.Delim:
		n := &node{kind: kObject}
		if t == '[' {
			n.kind = kArray
		}
		for dec.More() {
			if n.kind == kObject {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := k.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", k)
				}
				n.keys = append(n.keys, key)
			}
			v, err := tokenTree(dec)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, v)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return n, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// jsonSyntaxError turns a decoding error into an *Error with line and column.
func jsonSyntaxError(file string, data []byte, err error) *Error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		// Offset counts the bytes read, the offending one included.
		off := int(se.Offset) - 1
		if off < 0 {
			off = 0
		}
		line, col := lineCol(data, off)
		return &Error{File: file, Line: line, Col: col, Msg: se.Error(), Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		line, col := lineCol(data, len(data))
		return &Error{File: file, Line: line, Col: col, Msg: "unexpected end of JSON input", Err: err}
	}
	return &Error{File: file, Msg: "invalid JSON: " + err.Error(), Err: err}
}

// lineCol converts a byte offset into a 1-based line and column (in bytes).
func lineCol(data []byte, off int) (line, col int) {
	if off > len(data) {
		off = len(data)
	}
	before := data[:off]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = off - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// yamlLineRE matches the position prefix of yaml.v3 syntax errors.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlNodeBudget bounds the tree made from a YAML file, since aliases can make a
// small file expand into a huge tree ("billion laughs").
const yamlNodeBudget = 100_000

// yamlPosError is a problem found while converting YAML nodes, at a line.
type yamlPosError struct {
	line int
	msg  string
}

func (e *yamlPosError) Error() string { return e.msg }

// parseYAML parses a YAML document into a tree. Only the first document is read.
func parseYAML(file string, data []byte) (*node, *Error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &Error{File: file, Line: line, Msg: m[2], Err: err}
		}
		return nil, &Error{File: file, Msg: "invalid YAML: " + err.Error(), Err: err}
	}
	if doc.Kind == 0 { // empty file
		return &node{kind: kNull}, nil
	}
	budget := yamlNodeBudget
	n, err := yamlTree(&doc, &budget, 0)
	if err != nil {
		e := &Error{File: file, Msg: err.Error()}
		var pe *yamlPosError
		if errors.As(err, &pe) {
			e.Line = pe.line
		}
		return nil, e
	}
	return n, nil
}

// yamlTree converts a yaml.v3 node into a tree node.
func yamlTree(y *yaml.Node, budget *int, depth int) (*node, error) {
	*budget--
	if *budget < 0 {
		return nil, &yamlPosError{y.Line, "document too large (expected at most 100000 values after alias expansion)"}
	}
	if depth > 10000 {
		return nil, &yamlPosError{y.Line, "document nested too deeply (expected at most 10000 levels)"}
	}
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return &node{kind: kNull}, nil
		}
		return yamlTree(y.Content[0], budget, depth+1)
	case yaml.AliasNode:
		if y.Alias == nil {
			return &node{kind: kNull}, nil
		}
		return yamlTree(y.Alias, budget, depth+1)
	case yaml.MappingNode:
		n := &node{kind: kObject}
		for i := 0; i+1 < len(y.Content); i += 2 {
			k := y.Content[i]
			for k.Kind == yaml.AliasNode && k.Alias != nil {
				k = k.Alias
			}
			if k.Kind != yaml.ScalarNode {
				return nil, &yamlPosError{k.Line, "mapping key is not a scalar (expected a key name, got a " + yamlKind(k) + ")"}
			}
			v, err := yamlTree(y.Content[i+1], budget, depth+1)
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, k.Value)
			n.vals = append(n.vals, v)
		}
		return n, nil
	case yaml.SequenceNode:
		n := &node{kind: kArray}
		for _, c := range y.Content {
			v, err := yamlTree(c, budget, depth+1)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, v)
		}
		return n, nil
	case yaml.ScalarNode:
		return yamlScalar(y)
	}
	return nil, &yamlPosError{y.Line, "unsupported YAML node"}
}

// yamlKind names a node's kind for messages.
func yamlKind(y *yaml.Node) string {
	switch y.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	}
	return "node"
}

// yamlScalar converts a scalar by its resolved tag, so that `port: 1883` is a number
// and `port: "1883"` a string, as in JSON.
func yamlScalar(y *yaml.Node) (*node, error) {
	switch y.ShortTag() {
	case "!!null":
		return &node{kind: kNull}, nil
	case "!!bool":
		var b bool
		if err := y.Decode(&b); err != nil {
			return nil, &yamlPosError{y.Line, err.Error()}
		}
		return &node{kind: kBool, b: b}, nil
	case "!!int":
		var i int64
		if err := y.Decode(&i); err == nil {
			return &node{kind: kNumber, text: strconv.FormatInt(i, 10)}, nil
		}
		var u uint64
		if err := y.Decode(&u); err == nil {
			return &node{kind: kNumber, text: strconv.FormatUint(u, 10)}, nil
		}
		return &node{kind: kString, text: y.Value}, nil
	case "!!float":
		var f float64
		if err := y.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			// .nan and .inf have no JSON form: keep the text, type checks report it.
			return &node{kind: kString, text: y.Value}, nil
		}
		return &node{kind: kNumber, text: strconv.FormatFloat(f, 'g', -1, 64)}, nil
	}
	// !!str, !!timestamp, !!binary and custom tags: the text as written.
	return &node{kind: kString, text: y.Value}, nil
}

// appendJSON writes n as compact JSON, keys in order.
func appendJSON(b []byte, n *node) []byte {
	switch n.kind {
	case kBool:
		if n.b {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case kNumber:
		return append(b, n.text...)
	case kString:
		return connector.AppendJSONString(b, n.text)
	case kObject:
		b = append(b, '{')
		for i, k := range n.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = connector.AppendJSONString(b, k)
			b = append(b, ':')
			b = appendJSON(b, n.vals[i])
		}
		return append(b, '}')
	case kArray:
		b = append(b, '[')
		for i, v := range n.vals {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, v)
		}
		return append(b, ']')
	}
	return append(b, "null"...)
}

// get returns the value of key in an object node, the last one if repeated (as
// encoding/json and Python's json do), or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != kObject {
		return nil
	}
	for i := len(n.keys) - 1; i >= 0; i-- {
		if n.keys[i] == key {
			return n.vals[i]
		}
	}
	return nil
}
