package serial

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// guideDevice is the device of the guide's custom_serial.json.
const guideDevice = `{
  "name": "SerialDevice1", "type": "default", "port": "/dev/ttyUSB0", "baudrate": 9600,
  "converter": "SerialUplinkConverter", "downlink_converter": "SerialDownlinkConverter",
  "telemetry": [{"type": "float", "key": "humidity", "untilDelimiter": "\r"}],
  "attributes": [{"key": "SerialNumber", "type": "string", "fromByte": 4, "toByte": -1}]
}`

// dev makes a device object with the given telemetry entries.
func dev(telemetry string) string {
	return `{"name":"D","type":"T","telemetry":[` + telemetry + `]}`
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestUplinkConvert(t *testing.T) {
	tests := []struct {
		name   string
		device string
		frame  string // hex
		want   string // JSON line with ts 1000
	}{
		{"guide example: fromByte 4 drops the 2, toByte -1 the \\n",
			guideDevice, hex.EncodeToString([]byte("48\r2430947595\n")),
			`{"deviceName":"SerialDevice1","deviceType":"default","telemetry":[{"ts":1000,"values":{"humidity":48}}],"attributes":{"SerialNumber":"430947595"}}`},
		{"guide example with fromByte 3",
			strings.Replace(guideDevice, `"fromByte": 4`, `"fromByte": 3`, 1), "34380d323433303934373539350a",
			`{"deviceName":"SerialDevice1","deviceType":"default","telemetry":[{"ts":1000,"values":{"humidity":48}}],"attributes":{"SerialNumber":"2430947595"}}`},
		{"fix: fromDelimiter is not part of the value",
			dev(`{"key":"t","type":"float","fromDelimiter":"T=","untilDelimiter":";"},{"key":"h","type":"int","fromDelimiter":"H="}`),
			hex.EncodeToString([]byte("T=21.5;H=40\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"t":21.5,"h":40}}],"attributes":{}}`},
		{"untilDelimiter is searched after the start",
			dev(`{"key":"b","type":"int","fromDelimiter":"b:","untilDelimiter":","}`),
			hex.EncodeToString([]byte("a:1,b:2,\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"b":2}}],"attributes":{}}`},
		{"a configured delimiter not in the frame: datapoint absent",
			dev(`{"key":"a","type":"int","untilDelimiter":";"},{"key":"b","type":"int","fromDelimiter":"X"},{"key":"c","type":"string"}`),
			hex.EncodeToString([]byte("12\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"c":"12"}}],"attributes":{}}`},
		{"delimiters win over bytes",
			dev(`{"key":"a","type":"string","untilDelimiter":",","fromByte":2}`),
			hex.EncodeToString([]byte("abc,def\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"a":"abc"}}],"attributes":{}}`},
		{"empty delimiter counts as absent",
			dev(`{"key":"a","type":"string","untilDelimiter":"","fromByte":1,"toByte":3}`),
			hex.EncodeToString([]byte("abcdef")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"a":"bc"}}],"attributes":{}}`},
		{"fix: fromByte/toByte are not swapped",
			dev(`{"key":"a","type":"string","fromByte":1,"toByte":3}`), "616263646566",
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"a":"bc"}}],"attributes":{}}`},
		{"negative indices count from the end",
			dev(`{"key":"a","type":"string","fromByte":-4,"toByte":-1}`), hex.EncodeToString([]byte("abc123\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"a":"123"}}],"attributes":{}}`},
		{"out of range clamps; 0 is a value; either may be absent",
			dev(`{"key":"a","type":"string","fromByte":2,"toByte":100},{"key":"b","type":"string","fromByte":0,"toByte":2},{"key":"c","type":"string","toByte":1},{"key":"d","type":"string","fromByte":-100},{"key":"e","type":"string","fromByte":100}`),
			hex.EncodeToString([]byte("abcd")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"a":"cd","b":"ab","c":"a","d":"abcd"}}],"attributes":{}}`},
		{"empty slice is absent",
			dev(`{"key":"a","type":"string","fromByte":2,"toByte":2},{"key":"b","type":"hex","fromByte":3,"toByte":1}`), "61626364",
			`{"deviceName":"D","deviceType":"T","telemetry":[],"attributes":{}}`},
		{"fix: 0, 0.0 and false are values",
			dev(`{"key":"i","type":"int","toByte":1},{"key":"f","type":"float","fromByte":2,"toByte":5},{"key":"b","type":"bool","fromByte":6,"toByte":7}`),
			hex.EncodeToString([]byte("0,0.0,0\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"i":0,"f":0,"b":false}}],"attributes":{}}`},
		{"int: sign, whitespace, beyond int64 sent exactly",
			dev(`{"key":"a","type":"int","untilDelimiter":","},{"key":"b","type":"int","fromDelimiter":",","untilDelimiter":";"},{"key":"c","type":"int","fromDelimiter":";"}`),
			hex.EncodeToString([]byte(" -42 ,+7;123456789012345678901234567890\r\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"a":-42,"b":7,"c":123456789012345678901234567890}}],"attributes":{}}`},
		{"float and double",
			dev(`{"key":"a","type":"float","untilDelimiter":","},{"key":"b","type":"double","fromDelimiter":","}`),
			hex.EncodeToString([]byte("1e3, -2.5\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"a":1000,"b":-2.5}}],"attributes":{}}`},
		{"bool: integer not 0, true/false in any case",
			dev(`{"key":"a","type":"bool","toByte":1},{"key":"b","type":"bool","fromByte":2,"toByte":6},{"key":"c","type":"bool","fromByte":7,"toByte":12},{"key":"d","type":"bool","fromByte":13,"toByte":14}`),
			hex.EncodeToString([]byte("5,TRUE,False,0\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"a":true,"b":true,"c":false,"d":false}}],"attributes":{}}`},
		{"json is validated and sent raw",
			dev(`{"key":"j","type":"json"}`), hex.EncodeToString([]byte(`{"a":[1,2],"b":"x"}` + "\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"j":{"a":[1,2],"b":"x"}}}],"attributes":{}}`},
		{"absent or unknown type is lower-case hex of the bytes",
			dev(`{"key":"a","toByte":2},{"key":"b","type":"bytes","fromByte":2}`), "0aff10ab",
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"a":"0aff","b":"10ab"}}],"attributes":{}}`},
		{"string is trimmed; only whitespace is absent",
			dev(`{"key":"a","type":"string","untilDelimiter":","},{"key":"b","type":"string","fromDelimiter":","}`),
			hex.EncodeToString([]byte("  hé llo \t,   \r\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"a":"hé llo"}}],"attributes":{}}`},
		{"values that do not parse are left out, the others still go",
			dev(`{"key":"i","type":"int","untilDelimiter":","},{"key":"f","type":"float","fromDelimiter":",","untilDelimiter":";"},{"key":"s","type":"string","fromDelimiter":";"}`),
			hex.EncodeToString([]byte("abc,nan;ok\n")),
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"s":"ok"}}],"attributes":{}}`},
		{"invalid UTF-8 string, bad bool, bad json are left out",
			dev(`{"key":"s","type":"string","toByte":2},{"key":"b","type":"bool","fromByte":2,"toByte":4},{"key":"j","type":"json","fromByte":4,"toByte":6},{"key":"h","fromByte":6}`),
			"fffe" + hex.EncodeToString([]byte("xy{x")) + "01",
			`{"deviceName":"D","deviceType":"T","telemetry":[{"ts":1000,"values":{"h":"01"}}],"attributes":{}}`},
		{"timeseries and deviceName/deviceType aliases",
			`{"deviceName":"N","deviceType":"M","name":"ignored","timeseries":[{"key":"a","type":"int"}],"attributes":[{"key":"b","type":"int"}]}`,
			hex.EncodeToString([]byte("7\n")),
			`{"deviceName":"N","deviceType":"M","telemetry":[{"ts":1000,"values":{"a":7}}],"attributes":{"b":7}}`},
		{"defaults: SerialDevice / default",
			`{"attributes":[{"key":"b","type":"string"}]}`, hex.EncodeToString([]byte("x\n")),
			`{"deviceName":"SerialDevice","deviceType":"default","telemetry":[],"attributes":{"b":"x"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newUplink([]byte(tt.device), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			got := string(AppendConvertedJSON(nil, c.ConvertAt(mustHex(t, tt.frame), 1000)))
			if got != tt.want {
				t.Errorf("frame %s\n got %s\nwant %s", tt.frame, got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("invalid JSON %s", got)
			}
		})
	}
}

func TestUplinkErrorLogNamesDeviceKeyAndFrame(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := newUplink([]byte(dev(`{"key":"temp","type":"int","untilDelimiter":","},{"key":"x","type":"int","fromDelimiter":"#"}`)), log)
	if err != nil {
		t.Fatal(err)
	}
	c.ConvertAt([]byte("abc,\n"), 1)
	out := logs.String()
	for _, want := range []string{"level=ERROR", "device=D", "telemetry=temp", "frame=6162632c0a", `error="not an integer: \"abc\""`,
		"level=DEBUG msg=\"datapoint not in frame\" device=D telemetry=x"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestUplinkStrategies(t *testing.T) {
	c, err := newUplink([]byte(`{"name":"D","reportStrategy":{"type":"ON_CHANGE"},"telemetry":[
		{"key":"a","type":"int"},{"key":"b","type":"int","reportStrategy":{"type":"ON_REPORT_PERIOD","reportPeriod":500}}]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := c.ConvertAt([]byte("1\n"), 5)
	vs := d.Telemetry[0].Values
	if vs[0].Strategy == nil || vs[0].Strategy.Type != "ON_CHANGE" || vs[1].Strategy == nil ||
		vs[1].Strategy.Type != "ON_REPORT_PERIOD" || vs[1].Strategy.ReportPeriod != 500 {
		t.Fatalf("strategies: %+v %+v", vs[0].Strategy, vs[1].Strategy)
	}
}

func TestUplinkConvertTimestamp(t *testing.T) {
	c, err := NewUplinkConverter([]byte(guideDevice), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Convert([]byte("48\r1\n"))
	if err != nil || len(d.Telemetry) != 1 || d.Telemetry[0].TS == 0 {
		t.Fatalf("Convert: %+v %v", d, err)
	}
}

// guideConnectorFile is the example's connector file.
func guideConnectorFile(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../examples/serial/custom_serial.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkUplinkGuideFrame measures framing plus conversion of the guide's frame:
// one op is one frame.
func BenchmarkUplinkGuideFrame(b *testing.B) {
	c, err := newUplink([]byte(guideDevice), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	fr := newFramer(framing{mode: modeDelimiter, delim: []byte("\n"), maxSize: defaultMaxFrameSize})
	frame := []byte("48\r2430947595\n")
	block := bytes.Repeat(frame, 256)
	var t0 time.Time
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		f, ok := fr.next(t0)
		if !ok {
			fr.push(block, t0)
			f, _ = fr.next(t0)
		}
		if d := c.ConvertAt(f, 1); len(d.Attributes) != 1 {
			b.Fatal("bad conversion")
		}
	}
}
