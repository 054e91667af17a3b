package config

import (
	"math"
	"strconv"
	"strings"
)

// walker fills typed structs from a tree, checks types, and collects errors and
// unknown-key warnings with their key paths. It never stops at the first error.
type walker struct {
	file  string
	errs  []*Error
	warns []Warning
}

// field is one known key of an object: set fills the struct from the value. A nil
// set marks a key that is accepted and ignored.
type field struct {
	key string
	set func(n *node, path string)
}

func (w *walker) errorf(path, msg string) {
	w.errs = append(w.errs, &Error{File: w.file, Path: path, Msg: msg})
}

// wrongType records a type mismatch.
func (w *walker) wrongType(path, want string, got *node) {
	w.errorf(path, "wrong type (expected "+want+", got "+describe(got)+")")
}

// describe says what a value is, for "got ..." in messages.
func describe(n *node) string {
	switch n.kind {
	case kNull:
		return "null"
	case kBool:
		return strconv.FormatBool(n.b)
	case kNumber:
		return n.text
	case kString:
		s := n.text
		if len(s) > 60 {
			s = s[:57] + "..."
		}
		return strconv.Quote(s)
	case kObject:
		return "an object"
	}
	return "an array"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// object walks an object node: each key is handed to its field, unknown keys get
// one warning each, and a repeated key gets a warning (the last one wins). A null
// node is treated as absent; any other non-object is a type error. It reports
// whether n was an object.
func (w *walker) object(n *node, path string, fields []field) bool {
	if n == nil || n.kind == kNull {
		return false
	}
	if n.kind != kObject {
		w.wrongType(path, "an object", n)
		return false
	}
	seen := make(map[string]bool, len(n.keys))
	for i, k := range n.keys {
		p := joinPath(path, k)
		if seen[k] {
			w.warns = append(w.warns, Warning{File: w.file, Path: p, Msg: "duplicate key (the last one wins)"})
		}
		seen[k] = true
		f := findField(fields, k)
		if f == nil {
			w.unknown(p, k, fields)
			continue
		}
		if f.set != nil {
			f.set(n.vals[i], p)
		}
	}
	return true
}

func findField(fields []field, key string) *field {
	for i := range fields {
		if fields[i].key == key {
			return &fields[i]
		}
	}
	return nil
}

// unknown warns about a key no field knows, suggesting a known key that is
// spelt alike.
func (w *walker) unknown(path, key string, fields []field) {
	msg := "unknown key (ignored)"
	// Short keys get a stricter bound, so that "foo" does not suggest "qos".
	best, bestD := "", min(3, len(key)/3+1)
	for _, f := range fields {
		if d := editDistance(strings.ToLower(key), strings.ToLower(f.key)); d < bestD {
			best, bestD = f.key, d
		}
	}
	if best != "" {
		msg = "unknown key (ignored; did you mean " + strconv.Quote(best) + "?)"
	}
	w.warns = append(w.warns, Warning{File: w.file, Path: path, Msg: msg})
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// str fills dst from a string node; null leaves dst as it is.
func (w *walker) str(n *node, path string, dst *string) {
	switch n.kind {
	case kNull:
	case kString:
		*dst = n.text
	default:
		w.wrongType(path, "a string", n)
	}
}

// boolean fills dst from a boolean node; null leaves dst as it is.
func (w *walker) boolean(n *node, path string, dst *bool) {
	switch n.kind {
	case kNull:
	case kBool:
		*dst = n.b
	default:
		w.wrongType(path, "true or false", n)
	}
}

// integer fills dst from a number with no fractional part. A string holding such a
// number ("1883") is accepted too: the ThingsBoard UI writes some numbers as
// strings. null leaves dst as it is.
func (w *walker) integer(n *node, path string, dst *int) {
	switch n.kind {
	case kNull:
		return
	case kNumber, kString:
		if i, ok := parseInt(strings.TrimSpace(n.text)); ok {
			*dst = i
			return
		}
	}
	w.wrongType(path, "an integer", n)
}

// int64Field is integer for int64 destinations.
func (w *walker) int64Field(n *node, path string, dst *int64) {
	var i int
	set := false
	switch n.kind {
	case kNull:
		return
	case kNumber, kString:
		i, set = parseInt(strings.TrimSpace(n.text))
	}
	if !set {
		w.wrongType(path, "an integer", n)
		return
	}
	*dst = int64(i)
}

// parseInt parses a decimal integer, also written as a float with no fractional
// part (60.0, 1e3).
func parseInt(s string) (int, bool) {
	if i, err := strconv.ParseInt(s, 10, 0); err == nil {
		return int(i), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int(f), true
}
