package devfilter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"sync"
)

// DefaultCacheSize bounds the decision cache of a Filter.
const DefaultCacheSize = 10_000

// Filter holds the compiled deny and allow patterns of a filter file. A nil
// *Filter allows every device. It is safe for concurrent use.
type Filter struct {
	rules map[string]*rules // by connector name

	mu       sync.RWMutex
	cache    map[cacheKey]bool
	maxCache int
}

type rules struct {
	deny, allow []*regexp.Regexp
}

type cacheKey struct{ connector, device string }

// Load reads and compiles a filter file. Errors name the file and the key path,
// e.g. `list.json: deny["Modbus Connector"][1]: ...`.
func Load(path string) (*Filter, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("device filter: %w", err)
	}
	return Parse(path, data)
}

// Parse compiles the content of a filter file; name is used in errors.
func Parse(name string, data []byte) (*Filter, error) {
	var top map[string]json.RawMessage
	if err := decode(data, &top); err != nil {
		return nil, fmt.Errorf("%s: %w", name, syntaxPos(data, err))
	}
	if top == nil {
		return nil, fmt.Errorf("%s: expected an object with \"deny\" and \"allow\", got null", name)
	}
	f := &Filter{rules: map[string]*rules{}, cache: map[cacheKey]bool{}, maxCache: DefaultCacheSize}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, section := range keys {
		if section != "deny" && section != "allow" {
			return nil, fmt.Errorf("%s: %s: unknown key (expected \"deny\" or \"allow\")", name, section)
		}
		var lists map[string]json.RawMessage
		if err := decode(top[section], &lists); err != nil {
			return nil, fmt.Errorf("%s: %s: expected an object of connector names to lists of patterns: %w", name, section, err)
		}
		conns := make([]string, 0, len(lists))
		for c := range lists {
			conns = append(conns, c)
		}
		sort.Strings(conns)
		for _, conn := range conns {
			raw := lists[conn]
			path := section + "[" + strconv.Quote(conn) + "]"
			var patterns []any
			if err := decode(raw, &patterns); err != nil {
				return nil, fmt.Errorf("%s: %s: expected a list of patterns: %w", name, path, err)
			}
			r := f.rules[conn]
			if r == nil {
				r = &rules{}
				f.rules[conn] = r
			}
			for i, p := range patterns {
				s, ok := p.(string)
				if !ok {
					return nil, fmt.Errorf("%s: %s[%d]: expected a string pattern, got %T", name, path, i, p)
				}
				// Python's re.fullmatch: the whole name must match.
				re, err := regexp.Compile(`^(?:` + s + `)$`)
				if err != nil {
					return nil, fmt.Errorf("%s: %s[%d]: invalid pattern %q: %w", name, path, i, s, err)
				}
				if section == "deny" {
					r.deny = append(r.deny, re)
				} else {
					r.allow = append(r.allow, re)
				}
			}
		}
	}
	return f, nil
}

func decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// syntaxPos turns a JSON syntax error into "LINE:COL: ..." form.
func syntaxPos(data []byte, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err
	}
	// Offset counts the bytes read, the offending one included.
	off := max(min(int(se.Offset), len(data))-1, 0)
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Errorf("%d:%d: %w", line, col, err)
}

// Allowed reports whether the gateway accepts data of device from the connector
// named connectorName.
func (f *Filter) Allowed(connectorName, device string) bool {
	if f == nil {
		return true
	}
	r := f.rules[connectorName]
	if r == nil {
		return true
	}
	k := cacheKey{connectorName, device}
	f.mu.RLock()
	ok, hit := f.cache[k]
	f.mu.RUnlock()
	if hit {
		return ok
	}
	ok = r.allowed(device)
	f.mu.Lock()
	if len(f.cache) >= f.maxCache {
		for old := range f.cache { // drop an arbitrary entry: the map stays bounded
			delete(f.cache, old)
			break
		}
	}
	f.cache[k] = ok
	f.mu.Unlock()
	return ok
}

func (r *rules) allowed(device string) bool {
	for _, re := range r.deny {
		if re.MatchString(device) {
			return false
		}
	}
	if len(r.allow) == 0 {
		return true
	}
	for _, re := range r.allow {
		if re.MatchString(device) {
			return true
		}
	}
	return false
}
