package extensions

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotgw/iotgw/connector"
)

const exampleDevice = `{"name": "BinarySensor1", "type": "thermometer", "port": "/dev/ttyUSB0",
	"delimiter": "\r\n", "converter": "BinaryUplink"}`

// TestExampleBinaryUplink decodes known frames with the example converter, found
// through the Converters wrapper as the serial connector finds it.
func TestExampleBinaryUplink(t *testing.T) {
	convs := New("../examples/extensions", nil).Converters(connector.BuiltinConverters{}, "serial")
	u, err := convs.Uplink("BinaryUplink", []byte(exampleDevice))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		frame []byte
		want  string
	}{
		{[]byte{0x00, 0xeb, 0x5a, '\r', '\n'}, "BinarySensor1/thermometer ts=0 temperature=23.5 battery=90"},
		{[]byte{0xff, 0x9c, 0x64, '\r', '\n'}, "BinarySensor1/thermometer ts=0 temperature=-10 battery=100"},
		{[]byte{0x80, 0x00, 0x00, '\r', '\n'}, "BinarySensor1/thermometer ts=0 temperature=-3276.8 battery=0"},
		{[]byte{0x7f, 0xff, 0xff, '\r', '\n'}, "BinarySensor1/thermometer ts=0 temperature=3276.7 battery=255"},
	}
	for _, tt := range tests {
		d, err := u.Convert(tt.frame)
		if err != nil {
			t.Errorf("% x: %v", tt.frame, err)
			continue
		}
		if got := dataJSON(d); got != tt.want {
			t.Errorf("% x: got %s, want %s", tt.frame, got, tt.want)
		}
	}
	// Exact kinds, not only JSON text: 23.5 is a float, 90 an int.
	d, _ := u.Convert(tests[0].frame)
	if k := d.Telemetry[0].Values[0].Value.Kind(); k != connector.KindFloat {
		t.Errorf("temperature kind = %v, want float", k)
	}
	if k := d.Telemetry[0].Values[1].Value.Kind(); k != connector.KindInt {
		t.Errorf("battery kind = %v, want int", k)
	}
	_, err = u.Convert([]byte{0x01, '\r', '\n'})
	want := filepath.Join("..", "examples", "extensions", "serial", "BinaryUplink.star")
	if err == nil || !strings.HasPrefix(err.Error(), mustAbs(t, want)+":24:13: convert: fail: expected 3 bytes before the delimiter, got 1 (frame 010d0a)") {
		t.Errorf("short frame error = %v", err)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writeScript writes extensions/<typ>/<class>.star under a new folder and returns
// the folder and the script's path.
func writeScript(t *testing.T, typ, class, src string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, typ), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, typ, class+".star")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, p
}

// TestScriptErrors: load-time and run-time errors name the script, the line and
// column, and for a frame its hex.
func TestScriptErrors(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		loadErr string // after "PATH"
		convErr string // after "PATH", when loading succeeds
	}{
		{"syntax", "def convert(config, data)\n    return {}\n", ":2:1: got newline, want ':'", ""},
		{"undefined name", "def convert(config, data):\n    return foo\n", ":2:12: undefined: foo", ""},
		{"no convert", "x = 1\n", ": the script must define a function convert(config, data)", ""},
		{"one parameter", "def convert(data):\n    return {}\n", ":1:1: convert must take two parameters (config, data), it takes 1", ""},
		{"top-level loop", "while True:\n    pass\ndef convert(c, d):\n    pass\n", ":1:1: top level: stopped after 1000000 steps (an endless loop?)", ""},
		{"endless loop", "def convert(config, data):\n    n = 0\n    while True:\n        n += 1\n", "",
			":4:11: convert: stopped after 1000000 steps (an endless loop?) (frame 0102ff)"},
		{"index", "def convert(config, data):\n    return {\"telemetry\": {\"x\": data[7]}}\n", "",
			":2:36: convert: bytes index 7 out of range [-3:2] (frame 0102ff)"},
		{"builtin error", "def convert(config, data):\n    return struct.unpack(\">h\", data)\n", "",
			":2:25: convert: struct.unpack: requires a buffer of 2 bytes, got 3 (frame 0102ff)"},
		{"bad result", "def convert(config, data):\n    return [1]\n", "",
			": convert returned a list, expected a dict or None (frame 0102ff)"},
		{"bad key", "def convert(config, data):\n    return {\"telemtry\": {}}\n", "",
			": convert returned unknown key \"telemtry\" (expected deviceName, deviceType, telemetry, attributes) (frame 0102ff)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, path := writeScript(t, "serial", "Conv", tt.src)
			convs := New(dir, nil).Converters(connector.BuiltinConverters{}, "serial")
			start := time.Now()
			u, err := convs.Uplink("Conv", []byte(`{"name":"D"}`))
			if tt.loadErr != "" {
				if err == nil || err.Error() != path+tt.loadErr {
					t.Fatalf("load error = %v\nwant %s", err, path+tt.loadErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = u.Convert([]byte{1, 2, 0xff})
			if err == nil || err.Error() != path+tt.convErr {
				t.Fatalf("convert error = %v\nwant %s", err, path+tt.convErr)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestScriptResults covers the result forms and the helper builtins.
func TestScriptResults(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"defaults from config", `return {"telemetry": {"a": 1}}`, "Dev/meter ts=0 a=1"},
		{"names and list form", `return {"deviceName": "X", "deviceType": "T", "telemetry": [{"ts": 1700000000000, "values": {"a": 1.25}}, {"ts": 5, "values": {}}], "attributes": {"fw": "1.0"}}`,
			"X/T ts=1700000000000 a=1.25 attrs fw=\"1.0\""},
		{"none ignores the frame", `return None`, "Dev/meter"},
		{"value kinds", `return {"telemetry": {"n": None, "b": True, "big": 1 << 70, "s": "é\"", "raw": data[0:2], "l": [1, "x", {"k": 0.5}], "f": float("nan")}}`,
			`Dev/meter ts=0 n=null b=true big=1180591620717411303424 s="é\"" raw="0102" l=[1,"x",{"k":0.5}] f=null`},
		{"int_from_bytes", `return {"telemetry": {"be": int_from_bytes(data[0:2]), "le": int_from_bytes(data[0:2], "little"), "neg": int_from_bytes(data[2:4], signed=True), "u": int_from_bytes(data[2:4]), "idx": list(data.elems())[3], "one": data[3] == b"\xfe"}}`,
			"Dev/meter ts=0 be=258 le=513 neg=-2 u=65534 idx=254 one=true"},
		{"struct", `a, b, c = struct.unpack("<Hh2s", data[0:6]); d = struct.unpack(">B", data[6:7])[0]; e, f = struct.unpack_from(">bB", data, 2); return {"telemetry": {"a": a, "b": b, "c": hexlify(c), "d": d, "e": e, "f": f, "size": struct.calcsize("!xhIqd")}}`,
			`Dev/meter ts=0 a=513 b=-257 c="0a0b" d=12 e=-1 f=254 size=23`},
		{"float", `return {"telemetry": {"f": float_from_bytes(struct.pack(">f", 1.5)), "d": float_from_bytes(struct.pack("<d", -0.25), "little")}}`,
			"Dev/meter ts=0 f=1.5 d=-0.25"},
		{"pack and int_to_bytes", `return {"telemetry": {"p": hexlify(struct.pack(">hB?3s", -2, 255, True, b"ab")), "i": hexlify(int_to_bytes(-2, 3, "little", signed=True)), "u": hexlify(unhexlify("c0ffee"))}}`,
			`Dev/meter ts=0 p="fffeff01616200" i="feffff" u="c0ffee"`},
		{"config is the device object", `return {"telemetry": {"port": config["port"], "rate": config["baudrate"]}}`, `Dev/meter ts=0 port="/dev/pty9" rate=9600`},
		{"json module", `return {"attributes": {"j": json.decode('{"x": [1, 2]}')["x"][1]}}`, "Dev/meter attrs j=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "def convert(config, data):\n    " + strings.ReplaceAll(tt.body, "; ", "\n    ") + "\n"
			dir, _ := writeScript(t, "serial", "Conv", src)
			u, err := New(dir, nil).Converters(nil, "serial").Uplink("Conv", []byte(`{"name":"Dev","type":"meter","port":"/dev/pty9","baudrate":9600}`))
			if err != nil {
				t.Fatal(err)
			}
			d, err := u.Convert([]byte{1, 2, 0xff, 0xfe, 0x0a, 0x0b, 0x0c, 0, 0, 0})
			if err != nil {
				t.Fatal(err)
			}
			if got := dataJSON(d); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestScriptDownlink: a downlink script gets the matched entry with the device under
// "device", and the params; it returns bytes, a string or a list of byte values.
func TestScriptDownlink(t *testing.T) {
	src := `def convert(config, data):
    if config["method"] == "setTemp":
        return struct.pack(">Bh", 0x01, int(data["value"] * 10))
    if config["method"] == "name":
        return config["device"]["name"] + "\n"
    return [0xaa, data]
`
	dir, _ := writeScript(t, "serial", "Down", src)
	dl, err := New(dir, nil).Converters(connector.BuiltinConverters{}, "serial").Downlink("Down", []byte(`{"name":"Dev"}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cfg  map[string]any
		data any
		want string
	}{
		{map[string]any{"method": "setTemp"}, map[string]any{"value": 21.5}, "0100d7"},
		{map[string]any{"method": "setTemp"}, map[string]any{"value": -0.5}, "01fffb"},
		{map[string]any{"method": "name"}, nil, "4465760a"},
		{map[string]any{"method": "raw"}, 7, "aa07"},
	}
	for _, tt := range tests {
		b, err := dl.Convert(tt.cfg, tt.data)
		if err != nil {
			t.Errorf("%v: %v", tt.cfg, err)
			continue
		}
		if got := hexs(b); got != tt.want {
			t.Errorf("%v %v: got %s, want %s", tt.cfg, tt.data, got, tt.want)
		}
	}
	if _, err := dl.Convert(map[string]any{"method": "raw"}, 300); err == nil || !strings.Contains(err.Error(), "expected byte values 0..255") {
		t.Errorf("byte out of range: %v", err)
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// registerTestBuiltin registers a built-in converter once per test binary (-count=N).
var registerTestBuiltin sync.Once

// TestConvertersLookup: built-ins win, a script is found by class, nothing found is
// the base's error; the script compiles once for all devices.
func TestConvertersLookup(t *testing.T) {
	registerTestBuiltin.Do(func() {
		connector.RegisterUplink("extensionsTestBuiltin", func(cfg []byte, _ *slogLogger) (connector.UplinkConverter, error) {
			return goUplink{}, nil
		})
	})
	dir, _ := writeScript(t, "serial", "extensionsTestBuiltin", "syntax error here")
	if err := os.WriteFile(filepath.Join(dir, "serial", "Script.star"), []byte("def convert(c, d):\n    return None\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ext := New(dir, nil)
	convs := ext.Converters(connector.BuiltinConverters{}, "serial")
	if u, err := convs.Uplink("extensionsTestBuiltin", nil); err != nil {
		t.Errorf("built-in: %v", err)
	} else if _, ok := u.(goUplink); !ok {
		t.Errorf("built-in class resolved to %T", u)
	}
	u1, err1 := convs.Uplink("Script", []byte(`{"name":"A"}`))
	u2, err2 := convs.Uplink("Script", []byte(`{"name":"B"}`))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if u1.(*scriptUplink).s != u2.(*scriptUplink).s {
		t.Error("script compiled twice")
	}
	if _, err := convs.Uplink("Missing", nil); err == nil || !strings.Contains(err.Error(), `uplink converter "Missing" not found`) {
		t.Errorf("missing: %v", err)
	}
	if _, err := ext.Converters(connector.BuiltinConverters{}, "modbus").Uplink("Script", nil); err == nil {
		t.Error("a script of another connector type was used")
	}
	if _, err := convs.Uplink("../serial/Script", nil); err == nil {
		t.Error("a class with a path was accepted")
	}
	if _, err := convs.Uplink("Script", []byte(`[1]`)); err == nil || !strings.Contains(err.Error(), "expected a JSON object, got list") {
		t.Errorf("bad device config: %v", err)
	}
}

// TestScriptConcurrent: one script, many devices converting at once (run with -race).
func TestScriptConcurrent(t *testing.T) {
	convs := New("../examples/extensions", nil).Converters(nil, "serial")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := convs.Uplink("BinaryUplink", []byte(`{"name":"D`+string(rune('0'+i))+`"}`))
			if err != nil {
				t.Error(err)
				return
			}
			for range 200 {
				d, err := u.Convert([]byte{0x00, 0xeb, 0x5a, '\n'})
				if err != nil || d.Telemetry[0].Values[0].Value.Float() != 23.5 || d.DeviceName != "D"+string(rune('0'+i)) {
					t.Errorf("convert: %v %v", d, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzStructUnpack: any format either parses or is refused; unpacking a buffer of
// calcsize bytes never panics and makes the advertised number of values.
func FuzzStructUnpack(f *testing.F) {
	f.Add(">hB", []byte{0, 0xeb, 0x5a})
	f.Add("<2sxIq?", make([]byte, 16))
	f.Add("!3c d f", make([]byte, 15))
	f.Add("10x", []byte{})
	f.Fuzz(func(t *testing.T, format string, b []byte) {
		sf, err := parseStructFormat(format)
		if err != nil || sf.size > 1<<16 {
			return
		}
		buf := make([]byte, sf.size)
		copy(buf, b)
		if got := len(sf.unpack(buf)); got != sf.values() {
			t.Fatalf("%q: %d values, want %d", format, got, sf.values())
		}
	})
}
