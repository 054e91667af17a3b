package extensions

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/connector"
)

// TestDecodeData covers the forms of a "data" message.
func TestDecodeData(t *testing.T) {
	tests := []struct {
		line, want, err string
	}{
		{`{"type":"data","deviceName":"D","deviceType":"T","telemetry":{"b":2,"a":1.5,"s":"x","n":null,"o":{"k":[1]}}}`,
			`D/T ts=0 b=2 a=1.5 s="x" n=null o={"k":[1]}`, ""},
		{`{"v":1,"type":"data","device":"D","telemetry":[{"ts":1700000000123,"values":{"t":21.5}},{"ts":1700000000124,"values":{"t":false}}],"attributes":{"fw":"1.2","big":12345678901234567890}}`,
			`D/default ts=1700000000123 t=21.5 ts=1700000000124 t=false attrs fw="1.2" big=12345678901234567890`, ""},
		{`{"type":"data","deviceName":"D","attributes":{"only":0}}`, `D/default attrs only=0`, ""},
		{`{"type":"data","deviceName":"D","telemetry":7}`, "", "telemetry: expected an object or a list"},
		{`{"type":"data","deviceName":"D","telemetry":[{"ts":"x"}]}`, "", `telemetry: expected [{"ts": ms, "values": {...}}]`},
		{`{"type":"data","telemetry":{}}`, "", `data without "deviceName"`},
		{`{"v":2,"type":"data"}`, "", "protocol version 2 not supported (this gateway speaks 1)"},
		{`{"deviceName":"D"}`, "", `no "type"`},
		{`[1]`, "", "not a JSON object"},
	}
	for _, tt := range tests {
		m, err := decodeUp([]byte(tt.line))
		var d *connector.ConvertedData
		if err == nil {
			d, err = m.converted()
		}
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %s", tt.line, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.line, err)
			continue
		}
		if got := dataJSON(d); got != tt.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.line, got, tt.want)
		}
	}
}

// TestDownMessages checks the exact lines sent down.
func TestDownMessages(t *testing.T) {
	line, err := configLine(connector.Config{Name: "N", ID: "i", Type: "t", Class: "C", Raw: json.RawMessage("{\n  \"a\": [1, 2],\n  \"s\": \"x\\ny\"\n}\n")})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"type":"config","name":"N","id":"i","connectorType":"t","class":"C","configuration":{"a":[1,2],"s":"x\ny"}}` + "\n"; string(line) != want {
		t.Errorf("config line\ngot  %s\nwant %s", line, want)
	}
	if line, _ := configLine(connector.Config{Name: "N"}); !strings.Contains(string(line), `"configuration":{}`) {
		t.Errorf("empty configuration: %s", line)
	}
	if _, err := configLine(connector.Config{Path: "/x.json", Raw: json.RawMessage("{")}); err == nil || !strings.HasPrefix(err.Error(), "/x.json: invalid JSON") {
		t.Errorf("bad configuration: %v", err)
	}
	tests := []struct {
		msg  any
		want string
	}{
		{downAttributes{V: 1, Type: msgAttributes, Device: "D", Data: map[string]any{"z": json.Number("10"), "a": "<b>"}}, `{"v":1,"type":"attributes","device":"D","data":{"a":"\u003cb\u003e","z":10}}`},
		{downRPC{V: 1, Type: msgRPC, Device: "D", ID: 3, Method: "m", Params: map[string]any{"x": true}}, `{"v":1,"type":"rpc","device":"D","id":3,"method":"m","params":{"x":true}}`},
		{downRPC{V: 1, Type: msgRPC, Device: "D", ID: 4, Method: "m"}, `{"v":1,"type":"rpc","device":"D","id":4,"method":"m"}`},
	}
	for _, tt := range tests {
		got, err := encodeLine(tt.msg)
		if err != nil || string(got) != tt.want+"\n" {
			t.Errorf("got %s (%v), want %s", got, err, tt.want)
		}
	}
}

// TestFindExecutable covers the lookup of a process connector's program.
func TestFindExecutable(t *testing.T) {
	dir := t.TempDir()
	files := map[string]os.FileMode{
		"a/Exact":      0o755,
		"a/Exact.py":   0o755,
		"b/Conn.json":  0o755,
		"b/Conn.star":  0o755,
		"b/Conn.py":    0o644,
		"b/Conn.sh":    0o755,
		"c/Script.py":  0o644,
		"d/Plain":      0o644,
		"e/Other.star": 0o644,
	}
	for name, mode := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		typ, class string
		argv       string // "" when not found
		err        string
	}{
		{"a", "Exact", "DIR/a/Exact", ""},
		{"b", "Conn", "DIR/b/Conn.sh", ""},
		{"c", "Script", "python3 DIR/c/Script.py", ""},
		{"d", "Plain", "", "a file exists but none is executable"},
		{"e", "Other", "", ""},
		{"a", "Missing", "", ""},
		{"..", "a", "", ""},
		{"a", "../a/Exact", "", ""},
		{"a", "Ex*", "", ""},
	}
	ext := New(dir, nil)
	for _, tt := range tests {
		f, ok := ext.ConnectorFactory(tt.typ, tt.class)
		if tt.argv == "" && tt.err == "" {
			if ok {
				t.Errorf("%s/%s found, want not found", tt.typ, tt.class)
			}
			continue
		}
		if !ok {
			t.Errorf("%s/%s not found", tt.typ, tt.class)
			continue
		}
		c, err := f(&testGateway{}, connector.Config{Name: "x", Type: tt.typ})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s/%s: error %v, want %s", tt.typ, tt.class, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s/%s: %v", tt.typ, tt.class, err)
			continue
		}
		pc := c.(*processConnector)
		if got := strings.ReplaceAll(strings.Join(pc.argv, " "), dir, "DIR"); got != tt.argv {
			t.Errorf("%s/%s: argv %q, want %q", tt.typ, tt.class, got, tt.argv)
		}
		if pc.dir != filepath.Join(dir, tt.typ) {
			t.Errorf("%s/%s: working dir %s", tt.typ, tt.class, pc.dir)
		}
	}
}

// TestLogLimiter: a burst per window, then a count of what was held back.
func TestLogLimiter(t *testing.T) {
	var l logLimiter
	now := l.start.Add(limitWindow)
	for i := range limitBurst {
		if ok, s := l.allow(now); !ok || s != 0 {
			t.Fatalf("line %d: allow=%v suppressed=%d", i, ok, s)
		}
	}
	for range 3 {
		if ok, _ := l.allow(now); ok {
			t.Fatal("allowed past the burst")
		}
	}
	if ok, s := l.allow(now.Add(limitWindow)); !ok || s != 3 {
		t.Errorf("next window: allow=%v suppressed=%d, want true 3", ok, s)
	}
}

// TestReadLines: lines up to the limit pass whole, longer ones are reported and
// skipped to their end, a last line without "\n" counts.
func TestReadLines(t *testing.T) {
	const max = 8
	tests := []struct {
		in   string
		want []string
	}{
		{"a\nbb\n", []string{"a\n", "bb\n"}},
		{"12345678\n123456789\nok\n", []string{"12345678\n", "LONG", "ok\n"}},
		{strings.Repeat("x", 100) + "\nlast", []string{"LONG", "last"}},
		{"\n\n", []string{"\n", "\n"}},
		{"123456789", []string{"LONG"}},
		{"", nil},
	}
	for _, tt := range tests {
		var got []string
		readLines(strings.NewReader(tt.in), max, func(line []byte, tooLong bool) {
			if tooLong {
				got = append(got, "LONG")
				return
			}
			got = append(got, string(line))
		})
		if !equal(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzProtocolLine: any line from a process either decodes or is refused with an
// error; never a panic.
func FuzzProtocolLine(f *testing.F) {
	for _, s := range []string{
		`{"type":"data","deviceName":"D","telemetry":{"a":1}}`,
		`{"type":"data","deviceName":"D","telemetry":[{"ts":1,"values":{"a":[1,{"b":null}]}}],"attributes":{"x":"y"}}`,
		`{"type":"rpc_reply","device":"D","id":1,"data":{"ok":true}}`,
		`{"v":2,"type":"status","connected":true}`,
		`{"type":"data","deviceName":"D","attributes":{"big":123456789012345678901234567890}}`,
		`not json`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := decodeUp(line)
		if err != nil {
			return
		}
		if d, err := m.converted(); err == nil {
			for _, e := range d.Telemetry {
				for _, dp := range e.Values {
					if !json.Valid(dp.Value.AppendJSON(nil)) {
						t.Fatalf("value %q of %q is not valid JSON", dp.Value.AppendJSON(nil), line)
					}
				}
			}
		}
	})
}
