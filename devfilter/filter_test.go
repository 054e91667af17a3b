package devfilter

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestSampleListJSON(t *testing.T) {
	// The Python gateway 3.8.3 sample, as shipped.
	f, err := Load("/work/shared/tb-configs/3.8.3/list.json")
	if err != nil {
		if os.IsNotExist(err) {
			t.Skip("sample configs not available")
		}
		t.Fatal(err)
	}
	tests := []struct {
		conn, dev string
		want      bool
	}{
		{"MQTT Broker Connector", "Temperature Device", false},           // denied by name
		{"MQTT Broker Connector", "Temperature Device 2", false},         // no allow match
		{"MQTT Broker Connector", "user.name@example.com", false},        // denied by the e-mail pattern
		{"MQTT Broker Connector", "My Temperature Sensor", true},         // allowed
		{"MQTT Broker Connector", "My Temperature Sensor (copy)", false}, // full match only
		{"MQTT Broker Connector", "xMy Temperature Sensor", false},       // full match only
		{"Modbus Connector", "My Modbus Device", false},                  // denied
		{"Modbus Connector", "My Modbus Device 2", true},                 // no allow list
		{"Serial Connector", "Temperature Device", true},                 // unlisted connector
		{"mqtt broker connector", "Temperature Device", true},            // names are case-sensitive
		{"MQTT Broker Connector", "", false},                             // empty name: no allow match
		{"Modbus Connector", "", true},                                   // empty name, no allow list
		{"Modbus Connector", "My Modbus Device\n", true},                 // $ is the end of the text
		{"MQTT Broker Connector", "My Temperature Sensor\n", false},      // not a full match
		{"MQTT Broker Connector", "a@b.c", false},                        // e-mail pattern
		{"Modbus Connector", "prefix My Modbus Device", true},            // not a full match
		{"MQTT Broker Connector", "My Temperature Sensor", true},         // cached answer
		{"Modbus Connector", "My Modbus Device", false},                  // cached answer
		{"Serial Connector", strings.Repeat("x", 1000), true},            // long name
		{"MQTT Broker Connector", strings.Repeat("x", 1000), false},      // long name
		{"MQTT Broker Connector", "Temperature Device", false},           // cached answer
		{"Modbus Connector", "my modbus device", true},                   // patterns are case-sensitive
		{"MQTT Broker Connector", "My Temperature Sensor", true},         // again
		{"", "Temperature Device", true},                                 // no connector name
		{"Modbus Connector", "My Modbus Device", false},                  // again
		{"MQTT Broker Connector", "My Temperature Sensor", true},         // again
		{"MQTT Broker Connector", "temperature device", false},           // no allow match
		{"MQTT Broker Connector", "Temperature DeviceX", false},          // no allow match
		{"Modbus Connector", "My Modbus Devic", true},                    // not a full match
		{"Modbus Connector", "My Modbus Device ", true},                  // trailing space
		{"MQTT Broker Connector", "My Temperature Sensor ", false},       // trailing space
		{"MQTT Broker Connector", "My Temperature Sensor", true},         // again
	}
	for _, tt := range tests {
		if got := f.Allowed(tt.conn, tt.dev); got != tt.want {
			t.Errorf("Allowed(%q, %q) = %v, want %v", tt.conn, tt.dev, got, tt.want)
		}
	}
}

func TestRules(t *testing.T) {
	tests := []struct {
		name, file string
		conn, dev  string
		want       bool
	}{
		{"deny wins over allow", `{"deny":{"C":["D.*"]},"allow":{"C":["D1"]}}`, "C", "D1", false},
		{"allow list restricts", `{"allow":{"C":["A","B[0-9]+"]}}`, "C", "B12", true},
		{"allow list restricts others", `{"allow":{"C":["A","B[0-9]+"]}}`, "C", "B", false},
		{"empty allow list restricts nothing", `{"allow":{"C":[]}}`, "C", "X", true},
		{"null list", `{"deny":{"C":null}}`, "C", "X", true},
		{"alternation is anchored as a whole", `{"deny":{"C":["a|b"]}}`, "C", "ab", true},
		{"alternation matches a branch", `{"deny":{"C":["a|b"]}}`, "C", "b", false},
		{"empty file object", `{}`, "C", "X", true},
		{"other connector unaffected", `{"deny":{"C":[".*"]}}`, "K", "X", true},
		{"deny everything", `{"deny":{"C":[".*"]}}`, "C", "X", false},
		{"named group (Python syntax)", `{"deny":{"C":["(?P<n>x+)"]}}`, "C", "xxx", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("list.json", []byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Allowed(tt.conn, tt.dev); got != tt.want {
				t.Fatalf("Allowed(%q, %q) = %v, want %v", tt.conn, tt.dev, got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"syntax", "{\n  \"deny\": {,}\n}", `list.json: 2:12: invalid character ','`},
		{"null", `null`, `list.json: expected an object with "deny" and "allow", got null`},
		{"unknown key", `{"alow":{}}`, `list.json: alow: unknown key (expected "deny" or "allow")`},
		{"section not an object", `{"deny":[]}`, `list.json: deny: expected an object of connector names to lists of patterns`},
		{"list not a list", `{"deny":{"C":"x"}}`, `list.json: deny["C"]: expected a list of patterns`},
		{"pattern not a string", `{"allow":{"C":["a",1]}}`, `list.json: allow["C"][1]: expected a string pattern, got float64`},
		{"bad regexp", `{"deny":{"Modbus Connector":["ok","(x"]}}`, `list.json: deny["Modbus Connector"][1]: invalid pattern "(x": error parsing regexp: missing closing )`},
		{"look-ahead unsupported", `{"deny":{"C":["(?=x)"]}}`, `list.json: deny["C"][0]: invalid pattern "(?=x)"`},
		{"trailing data", `{} {}`, `list.json: unexpected data after the JSON value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("list.json", []byte(tt.file))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list.json")
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("error = %v, want a not-exist error naming %s", err, path)
	}
	if err := os.WriteFile(path, []byte(`{"deny":{"C":["x"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil || f.Allowed("C", "x") {
		t.Fatalf("Load = %v, Allowed(C, x) must be false", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestNilFilterAllowsAll(t *testing.T) {
	var f *Filter
	if !f.Allowed("C", "D") {
		t.Fatal("nil filter must allow")
	}
}

func TestCacheIsBounded(t *testing.T) {
	f, err := Parse("list.json", []byte(`{"deny":{"C":["d[0-9]*7"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	f.maxCache = 10
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				dev := fmt.Sprintf("d%d", i)
				if got, want := f.Allowed("C", dev), !strings.HasSuffix(dev, "7"); got != want {
					t.Errorf("Allowed(C, %s) = %v, want %v", dev, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(f.cache); n > 10 {
		t.Fatalf("cache has %d entries, bound is 10", n)
	}
}

func BenchmarkAllowedCached(b *testing.B) {
	f, err := Parse("list.json", []byte(`{"deny":{"C":["Temperature Device","(^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\\.[a-zA-Z0-9-.]+$)"]},"allow":{"C":["My Temperature Sensor"]}}`))
	if err != nil {
		b.Fatal(err)
	}
	f.Allowed("C", "My Temperature Sensor")
	b.ReportAllocs()
	for b.Loop() {
		f.Allowed("C", "My Temperature Sensor")
	}
}
