package config

import (
	"math"
	"strconv"
	"strings"
	"unicode"
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

// joinPath appends key to a key path. Keys that would make the path ambiguous or
// span lines (dots, spaces, control characters) are quoted.
func joinPath(path, key string) string {
	if key == "" || strings.ContainsFunc(key, func(r rune) bool {
		return r == '.' || r == '[' || r == '"' || !unicode.IsGraphic(r) || unicode.IsSpace(r)
	}) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// showPath returns a file path for a message: as it is, or quoted when it holds
// characters that would break the one-line form of errors.
func showPath(p string) string {
	if strings.ContainsFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(p)
	}
	return p
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
		if len(key) > 64 {
			break // no key is that long; spare the quadratic distance
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(f.key)); d < bestD {
			best, bestD = f.key, d
		}
	}
	if best != "" {
		msg = "unknown key (ignored; did you mean " + strconv.Quote(best) + "?)"
	}
	w.warns = append(w.warns, Warning{File: w.file, Path: path, Msg: msg})
}

// editDistance is the optimal string alignment distance between a and b, in
// bytes: insertions, deletions, substitutions and transpositions of neighbours
// ("prot" for "port") cost 1 each.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
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
