package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/connector"
)

const tbHead = `{"thingsboard":{"host":"h","security":{"accessToken":"a"}},"connectors":`

func TestConnectors(t *testing.T) {
	serial := "\uFEFF{\n  \"name\": \"Serial\",\n  \"logLevel\": \"debug\",\n  \"reportStrategy\": {\"type\": \"ON_CHANGE\", \"ttl\": 30},\n  \"devices\": []\n}\n"
	main := tbHead + `[
  {"name": "Serial A", "type": "serial", "configuration": "serial.json", "class": "SerialConnector"},
  {"name": "Serial B", "type": "serial", "configuration": "sub/b.json", "id": "fixed-id"},
  {"name": "Inline", "type": "mqtt", "configuration": "inline.json",
   "configurationJson": {"broker": {"host": "x", "port": 1883}, "logLevel": "TRACE"}, "useGRPC": false}
]}`
	gw, errText, warns := loadIn(t, "conf/tb_gateway.json", map[string]string{
		"conf/tb_gateway.json": main,
		"conf/serial.json":     serial,
		"conf/sub/b.json":      `{"devices":[]}`,
	}, nil)
	if errText != "" || len(warns) > 0 {
		t.Fatalf("errors %q warnings %q", errText, warns)
	}
	dir := gw.Dir
	want := []Connector{
		{Name: "Serial A", Type: "serial", Class: "SerialConnector", ID: DeriveConnectorID("Serial A"),
			Configuration: "serial.json", Path: filepath.Join(dir, "serial.json"),
			Raw:      json.RawMessage(strings.TrimSpace(strings.TrimPrefix(serial, "\uFEFF"))),
			LogLevel: "DEBUG", ReportStrategy: &connector.ReportStrategy{Type: "ON_CHANGE", TTL: 30}},
		{Name: "Serial B", Type: "serial", ID: "fixed-id", Configuration: "sub/b.json",
			Path: filepath.Join(dir, "sub/b.json"), Raw: json.RawMessage(`{"devices":[]}`), LogLevel: "INFO"},
		{Name: "Inline", Type: "mqtt", ID: DeriveConnectorID("Inline"), Configuration: "inline.json",
			Path: filepath.Join(dir, "inline.json"),
			Raw:  json.RawMessage(`{"broker":{"host":"x","port":1883},"logLevel":"TRACE"}`), LogLevel: "TRACE"},
	}
	if !reflect.DeepEqual(gw.Connectors, want) {
		for i := range gw.Connectors {
			t.Logf("got %d: %+v Raw=%s", i, gw.Connectors[i], gw.Connectors[i].Raw)
		}
		t.Errorf("connectors differ")
	}
}

func TestYAMLInlineConnector(t *testing.T) {
	main := `thingsboard:
  host: h
  security:
    accessToken: a
connectors:
  - name: Custom
    type: serial
    key: auto
    configurationJson:
      name: Custom
      logLevel: warning
      devices:
        - {name: d1, baudrate: 9600, enabled: yes, ratio: 0.5, nothing: ~}
`
	gw, errText, warns := loadIn(t, "tb_gateway.yaml", map[string]string{"tb_gateway.yaml": main}, nil)
	if errText != "" || len(warns) > 0 {
		t.Fatalf("errors %q warnings %q", errText, warns)
	}
	c := gw.Connectors[0]
	wantRaw := `{"name":"Custom","logLevel":"warning","devices":[{"name":"d1","baudrate":9600,"enabled":"yes","ratio":0.5,"nothing":null}]}`
	if string(c.Raw) != wantRaw || c.LogLevel != "WARNING" || c.Path != "" {
		t.Errorf("got Raw %s LogLevel %q Path %q", c.Raw, c.LogLevel, c.Path)
	}
}

func TestDeriveConnectorID(t *testing.T) {
	a, b := DeriveConnectorID("MQTT Broker Connector"), DeriveConnectorID("Modbus Connector")
	if a == b || a != DeriveConnectorID("MQTT Broker Connector") {
		t.Errorf("ids not stable and distinct: %s %s", a, b)
	}
	// Version 5, RFC 4122 variant, canonical form.
	if len(a) != 36 || a[14] != '5' || !strings.ContainsRune("89ab", rune(a[19])) {
		t.Errorf("not a version 5 UUID: %s", a)
	}
	if a != "75b9fdda-03e3-532f-98b6-584eecedf215" {
		t.Errorf("id of MQTT Broker Connector changed: %s (ids must stay stable across releases)", a)
	}
}

func TestConnectorErrors(t *testing.T) {
	tests := []struct {
		name  string
		list  string
		files map[string]string
		want  string
	}{
		{name: "not a list", list: `{"name":"a"}`,
			want: `tb_gateway.json: connectors: wrong type (expected a list of connectors, got an object)`},
		{name: "entry not an object", list: `["serial.json", null]`,
			want: "tb_gateway.json: connectors[0]: wrong type (expected an object, got \"serial.json\")\n" +
				"tb_gateway.json: connectors[1]: wrong type (expected an object with name, type and configuration, got null)"},
		{name: "missing keys", list: `[{}]`,
			want: "tb_gateway.json: connectors[0].name: missing (expected a connector name, got nothing)\n" +
				"tb_gateway.json: connectors[0].type: missing (expected a connector type such as serial or mqtt, got nothing)\n" +
				"tb_gateway.json: connectors[0].configuration: missing (expected the connector's file name, got nothing)"},
		{name: "duplicate names",
			list:  `[{"name":"A","type":"serial","configuration":"a.json"},{"name":"A","type":"mqtt","configuration":"a.json"}]`,
			files: map[string]string{"a.json": `{}`},
			want:  `tb_gateway.json: connectors[1].name: duplicate connector name (expected a name not used by connectors[0], got "A")`},
		{name: "duplicate ids",
			list:  `[{"name":"A","type":"serial","configuration":"a.json","id":"x"},{"name":"B","type":"serial","configuration":"a.json","id":"x"}]`,
			files: map[string]string{"a.json": `{}`},
			want:  `tb_gateway.json: connectors[1].id: duplicate connector id (expected an id not used by connectors[0], got "x")`},
		{name: "file absent", list: `[{"name":"A","type":"serial","configuration":"nope.json"}]`,
			want: `tb_gateway.json: connectors[0].configuration: cannot read connector file (expected a file at $DIR/nope.json, got "no such file or directory")`},
		{name: "file is a folder", list: `[{"name":"A","type":"serial","configuration":"."}]`,
			want: `tb_gateway.json: connectors[0].configuration: cannot read connector file (expected a file at $DIR, got "not a regular file")`},
		{name: "file syntax", list: `[{"name":"A","type":"serial","configuration":"a.json"}]`,
			files: map[string]string{"a.json": "{\n  \"devices\": [\n    {\"name\": \"x\",}\n  ]\n}"},
			want:  `a.json:3:18: invalid character '}' looking for beginning of object key string`},
		{name: "file empty", list: `[{"name":"A","type":"serial","configuration":"a.json"}]`,
			files: map[string]string{"a.json": ""},
			want:  `a.json:1:1: unexpected end of JSON input`},
		{name: "file not an object", list: `[{"name":"A","type":"serial","configuration":"a.json"}]`,
			files: map[string]string{"a.json": "[]"},
			want:  `a.json: wrong type (expected a JSON object, got an array)`},
		{name: "log level", list: `[{"name":"A","type":"serial","configuration":"a.json"}]`,
			files: map[string]string{"a.json": `{"logLevel":"VERBOSE"}`},
			want:  `a.json: logLevel: invalid value (expected one of TRACE, DEBUG, INFO, WARNING, WARN, ERROR, CRITICAL, NONE, got "VERBOSE")`},
		{name: "log level type", list: `[{"name":"A","type":"serial","configuration":"a.json"}]`,
			files: map[string]string{"a.json": `{"logLevel":10}`},
			want:  `a.json: logLevel: wrong type (expected a string, got 10)`},
		{name: "report strategy", list: `[{"name":"A","type":"serial","configuration":"a.json"}]`,
			files: map[string]string{"a.json": `{"reportStrategy":{"type":"ON_REPORT_PERIOD","reportPeriod":-5}}`},
			want:  `a.json: reportStrategy.reportPeriod: missing or not positive for ON_REPORT_PERIOD (expected a period in milliseconds > 0, got -5)`},
		{name: "inline configuration", list: `[{"name":"A","type":"serial","configurationJson":{"logLevel":"LOUD"}},{"name":"B","type":"serial","configurationJson":[]}]`,
			want: "tb_gateway.json: connectors[0].configurationJson.logLevel: invalid value (expected one of TRACE, DEBUG, INFO, WARNING, WARN, ERROR, CRITICAL, NONE, got \"LOUD\")\n" +
				"tb_gateway.json: connectors[1].configurationJson: wrong type (expected an object, got an array)"},
		{name: "errors in main and connector files together",
			list:  `[{"name":"A","type":"serial","configuration":"a.json"},{"name":"B","type":"serial","configuration":"b.json"}]`,
			files: map[string]string{"a.json": `{"logLevel":"X"}`, "b.json": `{`},
			want: "a.json: logLevel: invalid value (expected one of TRACE, DEBUG, INFO, WARNING, WARN, ERROR, CRITICAL, NONE, got \"X\")\n" +
				"b.json:1:2: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"tb_gateway.json": tbHead + tt.list + "}"}
			for k, v := range tt.files {
				files[k] = v
			}
			_, got, _ := loadIn(t, "tb_gateway.json", files, nil)
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestConnectorFileNamedFromMainFolder(t *testing.T) {
	// Errors in a connector file name it as the user would reach it from where they
	// run iotgw: the main file's folder joined with the configuration value.
	_, got, _ := loadIn(t, "conf/tb_gateway.json", map[string]string{
		"conf/tb_gateway.json": tbHead + `[{"name":"A","type":"serial","configuration":"a.json"}]}`,
		"conf/a.json":          `{"logLevel":"LOUD"}`,
	}, nil)
	want := `conf/a.json: logLevel: invalid value (expected one of TRACE, DEBUG, INFO, WARNING, WARN, ERROR, CRITICAL, NONE, got "LOUD")`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestLoadConnectorFile(t *testing.T) {
	dir := setup(t, map[string]string{
		"ok.json":  "\uFEFF {\"a\": 1}\n",
		"bad.json": "{\"a\": 1,\n\"b\" 2}",
	})
	raw, err := LoadConnectorFile(filepath.Join(dir, "ok.json"))
	if err != nil || string(raw) != `{"a": 1}` {
		t.Errorf("ok.json: %q, %v", raw, err)
	}
	_, err = LoadConnectorFile("bad.json")
	var list *Errors
	if !errors.As(err, &list) || err.Error() != `bad.json:2:5: invalid character '2' after object key` {
		t.Errorf("bad.json: %v", err)
	}
	if e := list.List[0]; e.Line != 2 || e.Col != 5 || e.File != "bad.json" {
		t.Errorf("bad.json item: %+v", e)
	}
	_, err = LoadConnectorFile("none.json")
	if !errors.Is(err, os.ErrNotExist) || err.Error() != "none.json: cannot read file: no such file or directory" {
		t.Errorf("none.json: %v", err)
	}
}
