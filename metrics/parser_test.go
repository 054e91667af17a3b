package metrics

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// This file is a small, strict parser of the text exposition format 0.0.4, used to
// check that what WriteTo produces is well formed independently of the exact-text
// tests. It is stricter than Prometheus where our output promises more: no blank
// lines or free comments, no timestamps, families sorted by name and contiguous,
// series sorted within a family, HELP (optional) before TYPE before samples.

type parsedFamily struct {
	name, help, typ string
	series          []string           // in order of appearance, e.g. `x{a="b"}`
	values          map[string]float64 // by series
}

type parsedExposition struct {
	families []*parsedFamily
	bySeries map[string]float64
}

func (p *parsedExposition) sample(series string) (float64, bool) {
	v, ok := p.bySeries[series]
	return v, ok
}

func parseExposition(text string) (*parsedExposition, error) {
	out := &parsedExposition{bySeries: map[string]float64{}}
	if text == "" {
		return out, nil
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("exposition does not end with a newline")
	}
	seen := map[string]bool{}
	var cur *parsedFamily
	var pendingHelp *parsedFamily // HELP seen, TYPE not yet
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		ln := i + 1
		switch {
		case line == "":
			return nil, fmt.Errorf("line %d: blank line", ln)
		case strings.HasPrefix(line, "# HELP "):
			rest := strings.TrimPrefix(line, "# HELP ")
			name, help, ok := strings.Cut(rest, " ")
			if !ok {
				return nil, fmt.Errorf("line %d: HELP without text", ln)
			}
			if err := checkName(name, true); err != nil {
				return nil, fmt.Errorf("line %d: %w", ln, err)
			}
			h, err := unescape(help, false)
			if err != nil {
				return nil, fmt.Errorf("line %d: help: %w", ln, err)
			}
			if seen[name] {
				return nil, fmt.Errorf("line %d: family %s appears twice", ln, name)
			}
			if pendingHelp != nil {
				return nil, fmt.Errorf("line %d: HELP for %s not followed by its TYPE", ln, pendingHelp.name)
			}
			pendingHelp = &parsedFamily{name: name, help: h}
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Split(strings.TrimPrefix(line, "# TYPE "), " ")
			if len(f) != 2 {
				return nil, fmt.Errorf("line %d: TYPE wants a name and a type", ln)
			}
			name, typ := f[0], f[1]
			if err := checkName(name, true); err != nil {
				return nil, fmt.Errorf("line %d: %w", ln, err)
			}
			switch typ {
			case "counter", "gauge", "histogram", "summary", "untyped":
			default:
				return nil, fmt.Errorf("line %d: unknown type %q", ln, typ)
			}
			if seen[name] {
				return nil, fmt.Errorf("line %d: family %s appears twice", ln, name)
			}
			if cur != nil {
				if err := finish(cur); err != nil {
					return nil, err
				}
				if name <= cur.name {
					return nil, fmt.Errorf("line %d: family %s after %s: not sorted", ln, name, cur.name)
				}
			}
			fam := &parsedFamily{name: name, typ: typ, values: map[string]float64{}}
			if pendingHelp != nil {
				if pendingHelp.name != name {
					return nil, fmt.Errorf("line %d: TYPE %s after HELP %s", ln, name, pendingHelp.name)
				}
				fam.help = pendingHelp.help
				pendingHelp = nil
			}
			seen[name] = true
			cur = fam
			out.families = append(out.families, fam)
		case strings.HasPrefix(line, "#"):
			return nil, fmt.Errorf("line %d: unexpected comment", ln)
		default:
			if cur == nil || pendingHelp != nil {
				return nil, fmt.Errorf("line %d: sample before its TYPE", ln)
			}
			series, value, err := parseSample(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", ln, err)
			}
			name, _, _ := strings.Cut(series, "{")
			if !belongs(cur, name) {
				return nil, fmt.Errorf("line %d: sample %s outside its family (%s %s)", ln, name, cur.typ, cur.name)
			}
			if _, dup := cur.values[series]; dup {
				return nil, fmt.Errorf("line %d: duplicate series %s", ln, series)
			}
			if cur.typ == "counter" && (value < 0 || math.IsNaN(value)) {
				return nil, fmt.Errorf("line %d: counter %s = %v", ln, series, value)
			}
			cur.series = append(cur.series, series)
			cur.values[series] = value
			out.bySeries[series] = value
		}
	}
	if pendingHelp != nil {
		return nil, fmt.Errorf("HELP for %s without TYPE", pendingHelp.name)
	}
	if cur != nil {
		if err := finish(cur); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func belongs(f *parsedFamily, name string) bool {
	if f.typ == "histogram" {
		return name == f.name+"_bucket" || name == f.name+"_sum" || name == f.name+"_count"
	}
	return name == f.name
}

// finish checks a completed family: non-empty, series sorted (counters and gauges),
// and for histograms cumulative buckets ending in +Inf equal to _count.
func finish(f *parsedFamily) error {
	if len(f.series) == 0 {
		return fmt.Errorf("family %s has no samples", f.name)
	}
	if f.typ != "histogram" {
		if !sort.StringsAreSorted(f.series) {
			return fmt.Errorf("family %s: series not sorted: %v", f.name, f.series)
		}
		return nil
	}
	n := len(f.series)
	if n < 3 || f.series[n-2] != f.name+"_sum" || f.series[n-1] != f.name+"_count" {
		return fmt.Errorf("histogram %s: want buckets then _sum then _count, got %v", f.name, f.series)
	}
	prevLe, prevCount := math.Inf(-1), -1.0
	for _, s := range f.series[:n-2] {
		const pre, post = `_bucket{le="`, `"}`
		if !strings.HasPrefix(s, f.name+pre) || !strings.HasSuffix(s, post) {
			return fmt.Errorf("histogram %s: bad bucket series %s", f.name, s)
		}
		le, err := parseValue(strings.TrimSuffix(strings.TrimPrefix(s, f.name+pre), post))
		if err != nil {
			return fmt.Errorf("histogram %s: le of %s: %w", f.name, s, err)
		}
		if le <= prevLe {
			return fmt.Errorf("histogram %s: le not increasing at %s", f.name, s)
		}
		if c := f.values[s]; c < prevCount || c != math.Trunc(c) {
			return fmt.Errorf("histogram %s: bucket %s = %v not cumulative", f.name, s, c)
		}
		prevLe, prevCount = le, f.values[s]
	}
	if !math.IsInf(prevLe, 1) {
		return fmt.Errorf("histogram %s: last bucket is not +Inf", f.name)
	}
	if c := f.values[f.name+"_count"]; c != prevCount {
		return fmt.Errorf("histogram %s: _count %v != +Inf bucket %v", f.name, c, prevCount)
	}
	return nil
}

// parseSample splits `name{a="x",b="y"} value` into the series text (name plus the
// label section as written) and the value, checking every label.
func parseSample(line string) (string, float64, error) {
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return "", 0, fmt.Errorf("sample without value: %q", line)
	}
	name := line[:i]
	if err := checkName(name, true); err != nil {
		return "", 0, err
	}
	rest := line[i:]
	series := name
	if rest[0] == '{' {
		end, err := scanLabels(rest)
		if err != nil {
			return "", 0, fmt.Errorf("%s: %w", name, err)
		}
		series += rest[:end]
		rest = rest[end:]
	}
	if !strings.HasPrefix(rest, " ") || strings.Count(rest, " ") != 1 {
		return "", 0, fmt.Errorf("%s: want exactly one space then the value (no timestamp), got %q", name, rest)
	}
	v, err := parseValue(rest[1:])
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", name, err)
	}
	return series, v, nil
}

// scanLabels reads `{a="x",b="y"}` at the start of s and returns its length.
func scanLabels(s string) (int, error) {
	i := 1
	names := map[string]bool{}
	for {
		j := strings.IndexByte(s[i:], '=')
		if j < 0 {
			return 0, fmt.Errorf("label without '='")
		}
		ln := s[i : i+j]
		if err := checkName(ln, false); err != nil {
			return 0, err
		}
		if names[ln] {
			return 0, fmt.Errorf("duplicate label %s", ln)
		}
		names[ln] = true
		i += j + 1
		if i >= len(s) || s[i] != '"' {
			return 0, fmt.Errorf("label %s: value not quoted", ln)
		}
		i++
		start := i
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' {
				i++
			}
		}
		if i >= len(s) {
			return 0, fmt.Errorf("label %s: unterminated value", ln)
		}
		if _, err := unescape(s[start:i], true); err != nil {
			return 0, fmt.Errorf("label %s: %w", ln, err)
		}
		i++ // closing quote
		if i >= len(s) {
			return 0, fmt.Errorf("unterminated label set")
		}
		switch s[i] {
		case '}':
			return i + 1, nil
		case ',':
			i++
		default:
			return 0, fmt.Errorf("unexpected %q after label %s", s[i], ln)
		}
	}
}

// unescape accepts only the escapes the format defines: \\ and \n, and \" in label
// values; raw newlines (and raw quotes in labels) are errors.
func unescape(s string, label bool) (string, error) {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n' || (label && c == '"'):
			return "", fmt.Errorf("unescaped %q", c)
		case c != '\\':
			sb.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("trailing backslash")
		}
		switch s[i] {
		case '\\':
			sb.WriteByte('\\')
		case 'n':
			sb.WriteByte('\n')
		case '"':
			if !label {
				return "", fmt.Errorf(`\" is not an escape in HELP`)
			}
			sb.WriteByte('"')
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return sb.String(), nil
}

// parseValue accepts a Go float in decimal or exponent notation, or exactly +Inf,
// -Inf or NaN; strconv's extras (inf, Infinity, hex, underscores) are refused.
func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	if s == "" || strings.ContainsAny(s, "xXpP_iInN") {
		return 0, fmt.Errorf("bad value %q", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bad value %q: %w", s, err)
	}
	return v, nil
}

func checkName(s string, metric bool) error {
	if !validName(s, metric) {
		return fmt.Errorf("bad name %q", s)
	}
	return nil
}

// TestParserRejects makes sure the parser is strict enough to catch the mistakes a
// hand-written exposition makes; a parser that accepts everything would prove nothing.
func TestParserRejects(t *testing.T) {
	bad := map[string]string{
		"no final newline":      "# TYPE a counter\na 1",
		"sample before TYPE":    "a 1\n",
		"blank line":            "# TYPE a counter\n\na 1\n",
		"bad escape in label":   "# TYPE a counter\na{x=\"\\t\"} 1\n",
		"raw quote in label":    "# TYPE a counter\na{x=\"\"\"} 1\n",
		"unquoted label":        "# TYPE a counter\na{x=1} 1\n",
		"trailing comma":        "# TYPE a counter\na{x=\"1\",} 1\n",
		"duplicate label":       "# TYPE a counter\na{x=\"1\",x=\"2\"} 1\n",
		"timestamp":             "# TYPE a counter\na 1 1700000000\n",
		"two spaces":            "# TYPE a counter\na  1\n",
		"bad value":             "# TYPE a gauge\na Infinity\n",
		"hex value":             "# TYPE a gauge\na 0x10\n",
		"negative counter":      "# TYPE a counter\na -1\n",
		"wrong family":          "# TYPE a counter\nb 1\n",
		"unsorted families":     "# TYPE b counter\nb 1\n# TYPE a counter\na 1\n",
		"unsorted series":       "# TYPE a counter\na{x=\"2\"} 1\na{x=\"1\"} 1\n",
		"duplicate series":      "# TYPE a counter\na 1\na 2\n",
		"family twice":          "# TYPE a counter\na 1\n# TYPE a counter\n",
		"empty family":          "# TYPE a counter\n# TYPE b counter\nb 1\n",
		"HELP then other TYPE":  "# HELP a x\n# TYPE b counter\nb 1\n",
		"HELP escape quote":     "# HELP a x\\\"\n# TYPE a counter\na 1\n",
		"unknown type":          "# TYPE a meter\na 1\n",
		"free comment":          "# hello\n",
		"histogram no +Inf":     "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
		"histogram decreasing":  "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"histogram count":       "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
		"histogram le unsorted": "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"histogram no sum":      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
	}
	for name, text := range bad {
		if _, err := parseExposition(text); err == nil {
			t.Errorf("%s: parser accepted %q", name, text)
		}
	}
	good := "# HELP a x\\\\y\\n\n# TYPE a counter\na{x=\"q\\\"\\\\\\n\"} 1\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n"
	p, err := parseExposition(good)
	if err != nil {
		t.Fatalf("parser refused good input: %v", err)
	}
	if p.families[0].help != "x\\y\n" {
		t.Errorf("help = %q", p.families[0].help)
	}
}
