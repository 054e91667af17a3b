package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "github.com/iotgw/iotgw/connectors/all"
)

// call runs the CLI in-process and returns exit code, stdout and stderr.
func call(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(string) string { return "" },
	})
	return code, out.String(), errb.String()
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsageAndVersion(t *testing.T) {
	if code, _, errs := call(t, ""); code != exitUsage || !strings.Contains(errs, "Usage:") {
		t.Fatalf("no args: code %d, %q", code, errs)
	}
	if code, _, errs := call(t, "", "frobnicate"); code != exitUsage || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: code %d, %q", code, errs)
	}
	code, out, _ := call(t, "", "version")
	if code != exitOK || !regexp.MustCompile(`^iotgw \S+ \(commit .*, go1\.\d+`).MatchString(out) {
		t.Fatalf("version: code %d, %q", code, out)
	}
	if code, _, _ := call(t, "", "run", "--nope"); code != exitUsage {
		t.Fatalf("bad flag: code %d, want %d", code, exitUsage)
	}
}

func TestCheckExample(t *testing.T) {
	code, out, errs := call(t, "", "check", "--config", "../examples/serial/tb_gateway.json")
	if code != exitOK {
		t.Fatalf("check example: code %d\n%s", code, errs)
	}
	for _, want := range []string{"tb_gateway.json: OK", "server:     127.0.0.1:1883 (security accessToken, tls false, qos 1)",
		"storage:    memory (100000 records)", "Serial Connector", "type serial", "devices 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckExplainsMistakes: every mistake of a broken main file and of a broken
// serial connector file is reported on its own line with file and key path, and
// the exit code is 1 with no stack trace.
func TestCheckExplainsMistakes(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "serial.json", `{"devices":[{"name":"D","port":"/dev/null","baudrate":"fast","telemetry":[{"key":"h","type":"float","fromByte":"x"}]}]}`)
	main := write(t, dir, "tb_gateway.json", `{"thingsboard":{"host":"h","port":99999,"qos":2,"security":{"type":"accessToken"}},
"storage":{"type":"floppy"},
"connectors":[{"name":"S","type":"serial","configuration":"serial.json"}]}`)
	code, _, errs := call(t, "", "check", "--config", main)
	if code != exitError {
		t.Fatalf("code %d, want 1\n%s", code, errs)
	}
	for _, want := range []string{"thingsboard.port", "thingsboard.qos", "thingsboard.security.accessToken", "storage.type"} {
		if !strings.Contains(errs, main+": "+want) {
			t.Errorf("stderr lacks %q:\n%s", main+": "+want, errs)
		}
	}
	if strings.Contains(errs, "goroutine") || strings.Contains(errs, "panic") {
		t.Fatalf("stack trace in the output:\n%s", errs)
	}

	// A valid main file with a broken connector file: the connector's errors.
	main2 := write(t, dir, "tb2.json", `{"thingsboard":{"host":"h","security":{"accessToken":"T"}},
"connectors":[{"name":"S","type":"serial","configuration":"serial.json"}]}`)
	code, _, errs = call(t, "", "check", "--config", main2)
	if code != exitError || !strings.Contains(errs, "serial.json") || !strings.Contains(errs, "devices[0].baudrate") {
		t.Fatalf("connector errors: code %d\n%s", code, errs)
	}

	// JSON syntax: file:line:col.
	bad := write(t, dir, "bad.json", "{\n  \"thingsboard\": {,\n}")
	code, _, errs = call(t, "", "check", "--config", bad)
	if code != exitError || !regexp.MustCompile(regexp.QuoteMeta(bad)+`:2:\d+: `).MatchString(errs) {
		t.Fatalf("syntax error: code %d\n%s", code, errs)
	}

	// A missing file.
	code, _, errs = call(t, "", "check", "--config", filepath.Join(dir, "nope.json"))
	if code != exitError || !strings.Contains(errs, "nope.json") {
		t.Fatalf("missing file: code %d\n%s", code, errs)
	}
}

// sharedConfigs finds ../shared/tb-configs (CI and developers have it beside the repo).
func sharedConfigs(t *testing.T) string {
	for _, p := range []string{"../../shared/tb-configs", "/work/shared/tb-configs"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("../shared/tb-configs not found beside the repository")
	return ""
}

// TestCheckPythonSamples runs check on the Python gateway's own samples: the serial
// connector is accepted, and every other type is named as not supported yet.
func TestCheckPythonSamples(t *testing.T) {
	src := sharedConfigs(t)
	dir := t.TempDir()
	samples, _ := filepath.Glob(filepath.Join(src, "3.8.3", "*.json"))
	types := map[string]string{"custom_serial": "serial", "modbus_serial": "modbus"}
	var conns []map[string]string
	for _, p := range samples {
		b, _ := os.ReadFile(p)
		write(t, dir, filepath.Base(p), string(b))
		base := strings.TrimSuffix(filepath.Base(p), ".json")
		switch base {
		case "tb_gateway", "logs", "list":
			continue
		}
		typ := types[base]
		if typ == "" {
			typ = base
		}
		conns = append(conns, map[string]string{"name": base + " connector", "type": typ, "configuration": filepath.Base(p)})
	}
	var main map[string]any
	b, _ := os.ReadFile(filepath.Join(src, "3.8.3", "tb_gateway.json"))
	if err := json.Unmarshal(b, &main); err != nil {
		t.Fatal(err)
	}
	main["connectors"] = conns
	mb, _ := json.Marshal(main)
	mainPath := write(t, dir, "tb_gateway.json", string(mb))

	code, _, errs := call(t, "", "check", "--config", mainPath)
	if code != exitError {
		t.Fatalf("code %d, want 1 (unsupported types)\n%s", code, errs)
	}
	for _, typ := range []string{"modbus", "mqtt", "opcua", "bacnet", "ble", "can", "ftp", "knx", "ocpp", "odbc", "request", "rest", "snmp", "socket", "xmpp"} {
		if !strings.Contains(errs, `type "`+typ+`" is not supported yet`) {
			t.Errorf("no plain 'not supported yet' line for %s:\n%s", typ, errs)
		}
	}
	if strings.Contains(errs, `"serial"`) || strings.Contains(errs, "custom_serial.json:") {
		t.Errorf("the serial sample must be accepted:\n%s", errs)
	}

	// The main file alone (no connectors) is accepted as it is.
	code, out, errs := call(t, "", "check", "--config", filepath.Join(src, "3.8.3", "tb_gateway.json"))
	if code != exitOK {
		t.Fatalf("3.8.3 tb_gateway.json: code %d\n%s%s", code, out, errs)
	}
	// The older YAML form names an mqtt connector: not supported yet, said plainly.
	ydir := t.TempDir()
	yb, _ := os.ReadFile(filepath.Join(src, "yaml-2023", "tb_gateway.yaml"))
	ypath := write(t, ydir, "tb_gateway.yaml", string(yb))
	mq, _ := os.ReadFile(filepath.Join(src, "3.8.3", "mqtt.json"))
	write(t, ydir, "mqtt.json", string(mq))
	code, _, errs = call(t, "", "check", "--config", ypath)
	if code != exitError || !strings.Contains(errs, `type "mqtt" is not supported yet`) {
		t.Fatalf("yaml sample: code %d\n%s", code, errs)
	}
}

// TestConvert feeds the guide's frame to `iotgw convert`.
func TestConvert(t *testing.T) {
	code, out, errs := call(t, "48\r2430947595\n", "convert", "--config", "../examples/serial/custom_serial.json")
	if code != exitOK {
		t.Fatalf("code %d\n%s", code, errs)
	}
	var got struct {
		DeviceName string `json:"deviceName"`
		DeviceType string `json:"deviceType"`
		Telemetry  []struct {
			TS     int64          `json:"ts"`
			Values map[string]any `json:"values"`
		} `json:"telemetry"`
		Attributes map[string]any `json:"attributes"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if got.DeviceName != "SerialDevice1" || got.DeviceType != "default" || len(got.Telemetry) != 1 ||
		got.Telemetry[0].Values["humidity"] != 48.0 || got.Attributes["SerialNumber"] != "430947595" {
		t.Fatalf("converted %+v", got)
	}
	if code, _, errs := call(t, "", "convert"); code != exitUsage || !strings.Contains(errs, "--config") {
		t.Fatalf("convert without --config: %d %q", code, errs)
	}
	if code, _, errs := call(t, "x\n", "convert", "--config", "../examples/serial/custom_serial.json", "--device", "Nope"); code != exitError || !strings.Contains(errs, "SerialDevice1") {
		t.Fatalf("unknown device: %d %q", code, errs)
	}
}

func TestRunRejectsBrokenConfig(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "tb_gateway.json", `{"thingsboard":{"port":1883}}`)
	code, _, errs := call(t, "", "run", "--config", p)
	if code != exitError || !strings.Contains(errs, "thingsboard.host") {
		t.Fatalf("code %d\n%s", code, errs)
	}
}
