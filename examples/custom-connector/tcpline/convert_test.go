package tcpline

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/connector"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// render writes ConvertedData as compact text, so that a table states the exact
// result: "D/T tel@TS{k:v,...} attr{k:v}". Values are in their JSON form, so a type
// mistake (21 vs 21.5, "1" vs 1) shows.
func render(d *connector.ConvertedData) string {
	if d == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString(d.DeviceName + "/" + d.DeviceType)
	for _, e := range d.Telemetry {
		b.WriteString(" tel@")
		b.WriteString(string(connector.Int(e.TS).AppendJSON(nil)))
		b.WriteString("{")
		for i, v := range e.Values {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(v.Key + ":" + string(v.Value.AppendJSON(nil)))
		}
		b.WriteString("}")
	}
	if len(d.Attributes) > 0 {
		b.WriteString(" attr{")
		for i, v := range d.Attributes {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(v.Key + ":" + string(v.Value.AppendJSON(nil)))
		}
		b.WriteString("}")
	}
	return b.String()
}

const boilerDevice = `{"name":"Boiler1","type":"boiler","tsKey":"ts",
 "telemetry":{"temp":"float","pressure":"double","burner":"bool","starts":"int"},
 "attributes":{"fw":"string"}}`

func TestUplinkConvert(t *testing.T) {
	tests := []struct {
		name, device, line, want string
		wantErr                  string
	}{
		{"all types", boilerDevice,
			"ts=1700000000000;temp=21.5;pressure=1.2;burner=on;starts=42;fw=1.2.3",
			`Boiler1/boiler tel@1700000000000{temp:21.5,pressure:1.2,burner:true,starts:42} attr{fw:"1.2.3"}`, ""},
		{"no ts: 0, stamped by the connector", boilerDevice, "temp=20",
			`Boiler1/boiler tel@0{temp:20}`, ""},
		{"spaces, CR and empty pairs", boilerDevice, " temp = 19.25 ;; burner=OFF ;\r",
			`Boiler1/boiler tel@0{temp:19.25,burner:false}`, ""},
		{"unlisted keys ignored", boilerDevice, "temp=1;rssi=-70",
			`Boiler1/boiler tel@0{temp:1}`, ""},
		{"bad value left out, others kept", boilerDevice, "temp=warm;starts=3;burner=maybe",
			`Boiler1/boiler tel@0{starts:3}`, ""},
		{"int refuses a float", boilerDevice, "starts=3.5;temp=1",
			`Boiler1/boiler tel@0{temp:1}`, ""},
		{"bad ts: read time", boilerDevice, "ts=soon;temp=1",
			`Boiler1/boiler tel@0{temp:1}`, ""},
		{"only attributes", boilerDevice, "fw=2.0",
			`Boiler1/boiler attr{fw:"2.0"}`, ""},
		{"value with '=' keeps the rest", boilerDevice, "fw=a=b",
			`Boiler1/boiler attr{fw:"a=b"}`, ""},
		{"no pair at all", boilerDevice, "hello world", "", `no key=value pair in line "hello world"`},
		{"empty line", boilerDevice, "", "", `no key=value pair in line ""`},
		{"other separators",
			`{"name":"M","separator":",","keyValueSeparator":":","telemetry":{"a":"int","b":"string"}}`,
			"a:1, b:x y", `M/default tel@0{a:1,b:"x y"}`, ""},
		{"otherKeys telemetry guesses types",
			`{"name":"G","otherKeys":"telemetry","telemetry":{"code":"string"}}`,
			"n=7;f=2.5;b=true;s=abc;code=007",
			`G/default tel@0{n:7,f:2.5,b:true,s:"abc",code:"007"}`, ""},
		{"deviceName and deviceType win", `{"deviceName":"X","name":"Y","deviceType":"Z","telemetry":{"a":"int"}}`,
			"a=1", `X/Z tel@0{a:1}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := NewUplinkConverter([]byte(tc.device), quiet)
			if err != nil {
				t.Fatal(err)
			}
			got, err := u.Convert([]byte(tc.line))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := render(got); r != tc.want {
				t.Fatalf("\n got %s\nwant %s", r, tc.want)
			}
		})
	}
}

func TestUplinkReportStrategy(t *testing.T) {
	u, err := NewUplinkConverter([]byte(`{"name":"D","telemetry":{"t":"float"},"attributes":{"fw":"string"},
		"reportStrategy":{"type":"on_change","ttl":60}}`), quiet)
	if err != nil {
		t.Fatal(err)
	}
	d, err := u.Convert([]byte("t=1;fw=x"))
	if err != nil {
		t.Fatal(err)
	}
	want := connector.ReportStrategy{Type: connector.OnChange, TTL: 60}
	for _, dp := range append(d.Telemetry[0].Values, d.Attributes...) {
		if dp.Strategy == nil || *dp.Strategy != want {
			t.Fatalf("%s: strategy %+v, want %+v", dp.Key, dp.Strategy, want)
		}
	}
	// Without a device strategy the datapoints carry none: the connector's or the
	// gateway's applies.
	u, _ = NewUplinkConverter([]byte(boilerDevice), quiet)
	d, _ = u.Convert([]byte("temp=1"))
	if d.Telemetry[0].Values[0].Strategy != nil {
		t.Fatal("strategy set without a reportStrategy")
	}
}

func TestUplinkConfigErrors(t *testing.T) {
	tests := []struct{ device, want string }{
		{`{"telemetry":{"a":"complex"}}`, `telemetry.a: expected int, float, bool or string, got "complex"`},
		{`{"telemetry":{"a":"int"},"attributes":{"a":"string"}}`, `attributes.a: expected a key in telemetry or in attributes, got it in both`},
		{`{"telemetry":{"a":"int"},"separator":""}`, `separator: expected a non-empty text without a line break, got ""`},
		{`{"telemetry":{"a":"int"},"separator":"="}`, `keyValueSeparator: expected a text other than separator, got "=" for both`},
		{`{"telemetry":{"a":"int"},"otherKeys":"all"}`, `otherKeys: expected "ignore" or "telemetry", got "all"`},
		{`{"name":"D"}`, `telemetry: expected a map of keys to types (or "otherKeys": "telemetry"), got none: no line would give any data`},
		{`{"telemetry":{"a":"int"},"reportStrategy":{"type":"ON_REPORT_PERIOD"}}`, `reportStrategy.reportPeriod: expected milliseconds > 0 for ON_REPORT_PERIOD, got 0`},
		{`{"telemetry":{"a":"int"},"reportStrategy":{"type":"SOMETIMES"}}`, `reportStrategy.type: expected ON_RECEIVED, ON_CHANGE, ON_REPORT_PERIOD, ON_CHANGE_OR_REPORT_PERIOD or DISABLED, got "SOMETIMES"`},
		{`{"telemetry":["a"]}`, `tcpline uplink converter: telemetry: expected map[string]string, got a JSON array`},
	}
	for _, tc := range tests {
		_, err := NewUplinkConverter([]byte(tc.device), quiet)
		if want := "tcpline uplink converter: " + strings.TrimPrefix(tc.want, "tcpline uplink converter: "); err == nil || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", tc.device, err, tc.want)
		}
	}
}

func TestDownlinkConvert(t *testing.T) {
	dc, err := NewDownlinkConverter([]byte(`{"name":"Boiler1","type":"boiler"}`), quiet)
	if err != nil {
		t.Fatal(err)
	}
	num := json.Number("22.5")
	tests := []struct {
		name    string
		cfg     string
		data    any
		want    string
		wantErr string
	}{
		{"rpc with object params", `{"method":"getStatus"}`, map[string]any{"verbose": true}, "getStatus {\"verbose\":true}\n", ""},
		{"rpc with number params", `{"method":"setTemp"}`, num, "setTemp 22.5\n", ""},
		{"rpc with string params is JSON", `{"method":"say"}`, "hi\nthere", "say \"hi\\nthere\"\n", ""},
		{"rpc without params", `{"method":"reboot"}`, nil, "reboot\n", ""},
		{"command replaces the method", `{"method":"resetCounters","command":"reset"}`, []any{1, 2}, "reset [1,2]\n", ""},
		{"method with a space", `{"method":"two words"}`, nil, "", `RPC command "two words": expected one word`},
		{"default template", `{"attributeOnPlatform":"setpoint","stringToDevice":"set ${attr}=${value}\n"}`, num, "set setpoint=22.5\n", ""},
		{"python-style placeholder", `{"attributeOnThingsBoard":"mode","stringToDevice":"mode ${mode} for ${deviceName}/${deviceType}"}`, "eco", "mode eco for Boiler1/boiler\n", ""},
		{"bool and object values", `{"attributeOnPlatform":"cfg","stringToDevice":"cfg ${value}\r\n"}`, map[string]any{"a": 1}, "cfg {\"a\":1}\r\n", ""},
		{"bool value", `{"attributeOnPlatform":"on","stringToDevice":"on=${value}\n"}`, true, "on=true\n", ""},
		{"value with a line break", `{"attributeOnPlatform":"note","stringToDevice":"note ${value}\n"}`, "a\nb", "", "attribute note: the value holds a line break, which the line protocol cannot carry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg map[string]any
			if err := json.Unmarshal([]byte(tc.cfg), &cfg); err != nil {
				t.Fatal(err)
			}
			got, err := dc.Convert(cfg, tc.data)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	const tel = `"telemetry":{"a":"int"}`
	tests := []struct{ file, want string }{
		{`[]`, `expected a JSON object: json: cannot unmarshal array into Go value of type map[string]json.RawMessage`},
		{`{"devices":[]}`, `devices: expected a non-empty array of device objects, got []`},
		{`{}`, `devices: expected a non-empty array of device objects, got nothing`},
		{`{"devices":[{` + tel + `}]}`, `devices[0].port: expected a TCP port between 1 and 65535, got nothing`},
		{`{"devices":[{"port":70000,` + tel + `}]}`, `devices[0].port: expected a TCP port between 1 and 65535, got 70000`},
		{`{"devices":[{"port":"7000",` + tel + `}]}`, `devices[0].port: expected int, got a JSON string`},
		{`{"devices":[{"port":1,"readTimeoutSec":-1,` + tel + `}]}`, `devices[0].readTimeoutSec: expected seconds > 0 and ≤ 86400, got -1`},
		{`{"devices":[{"port":1,"attributeTemplate":"a\nb\n",` + tel + `}]}`, `devices[0].attributeTemplate: expected one line (a line break only at the end), got "a\nb\n"`},
		{`{"devices":[{"port":1,"attributeUpdates":[{"stringToDevice":"x"}],` + tel + `}]}`, `devices[0].attributeUpdates[0].attributeOnPlatform: expected an attribute name, got nothing`},
		{`{"devices":[{"port":1,"serverSideRpc":[{"method":"a b"}],` + tel + `}]}`, `devices[0].serverSideRpc[0]: expected a command of one word (set "command" when the method name has spaces), got "a b"`},
		{`{"devices":[{"port":1,"serverSideRpc":[{"method":"m","responseTimeoutSec":120}],` + tel + `}]}`, `devices[0].serverSideRpc[0].responseTimeoutSec: expected seconds > 0 and ≤ 55, got 120`},
		{`{"devices":[{"port":1,"serverSideRpc":[{"method":"m","withResponse":"yes"}],` + tel + `}]}`, `devices[0].serverSideRpc[0].withResponse: expected true or false, got "yes"`},
		{`{"devices":[{"name":"A","port":1,` + tel + `},{"name":"A","port":2,` + tel + `}]}`, `devices[1].name: expected a device name not used by devices[0], got "A"`},
		{`{"devices":[{"port":1,"telemetry":{"a":"x"}}]}`, `devices[0]: tcpline uplink converter: telemetry.a: expected int, float, bool or string, got "x"`},
		{`{"devices":[{"port":1,"converter":"Nope",` + tel + `}]}`, `devices[0]: uplink converter "Nope" not found: not built in and not in the extensions folder`},
	}
	for _, tc := range tests {
		_, err := New(nil, connector.Config{Name: "T", Type: Type, Path: "/etc/iotgw/tcpline.json", Raw: json.RawMessage(tc.file), Logger: quiet})
		want := "/etc/iotgw/tcpline.json: " + tc.want
		if err == nil || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", tc.file, err, want)
		}
	}
}
