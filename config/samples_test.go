package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tbConfigs returns the folder of the Python gateway's sample configurations:
// ../shared beside the repository (as in CI), else /work/shared. The test is
// skipped when neither exists.
func tbConfigs(t testing.TB) string {
	t.Helper()
	dir, ok := sampleRoot()
	if !ok {
		t.Skip("sample configurations not found (want ../../shared/tb-configs or /work/shared/tb-configs)")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// sampleRoot finds the samples folder, if there is one.
func sampleRoot() (string, bool) {
	for _, dir := range []string{"../../shared/tb-configs", "/work/shared/tb-configs"} {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir, true
		}
	}
	return "", false
}

// sampleConnectors are the connector samples of tb-configs/3.8.3, with the type the
// Python gateway gives them.
var sampleConnectors = []struct{ file, typ string }{
	{"bacnet.json", "bacnet"}, {"ble.json", "ble"}, {"can.json", "can"},
	{"custom_serial.json", "serial"}, {"ftp.json", "ftp"}, {"knx.json", "knx"},
	{"modbus.json", "modbus"}, {"modbus_serial.json", "modbus"}, {"mqtt.json", "mqtt"},
	{"ocpp.json", "ocpp"}, {"odbc.json", "odbc"}, {"opcua.json", "opcua"},
	{"request.json", "request"}, {"rest.json", "rest"}, {"snmp.json", "snmp"},
	{"socket.json", "socket"}, {"xmpp.json", "xmpp"},
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSample383 copies the 3.8.3 samples into a fresh folder and fills the main
// file's connector list with every connector sample; it returns the main file.
func writeSample383(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dir, e.Name()))
		}
	}
	// Keep the sample's key order: rewrite only its "connectors": [] line.
	mainText, err := os.ReadFile(filepath.Join(src, "tb_gateway.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]string
	for _, c := range sampleConnectors {
		name := strings.TrimSuffix(c.file, ".json") + " connector"
		list = append(list, map[string]string{"name": name, "type": c.typ, "configuration": c.file})
	}
	listJSON, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(mainText, []byte(`"connectors": []`)) {
		t.Fatal(`sample tb_gateway.json has no "connectors": [] to fill`)
	}
	mainText = bytes.Replace(mainText, []byte(`"connectors": []`), append([]byte(`"connectors": `), listJSON...), 1)
	mainPath := filepath.Join(dir, "tb_gateway.json")
	if err := os.WriteFile(mainPath, mainText, 0o644); err != nil {
		t.Fatal(err)
	}
	return mainPath
}

// TestSample383 loads the 3.8.3 main file with every connector sample in its list.
func TestSample383(t *testing.T) {
	src := filepath.Join(tbConfigs(t), "3.8.3")
	mainPath := writeSample383(t, src)
	dir := filepath.Dir(mainPath)
	gw, warns, err := LoadWith(mainPath, LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, w := range warns {
		t.Errorf("unexpected warning: %s", w)
	}
	if gw.Thingsboard.Host != "thingsboard.cloud" || gw.Thingsboard.Security.AccessToken != "YOUR_ACCESS_TOKEN" ||
		gw.Thingsboard.MaxPayloadSizeBytes != 8196 || !gw.Thingsboard.RemoteConfiguration {
		t.Errorf("thingsboard: %+v", gw.Thingsboard)
	}
	if len(gw.Connectors) != len(sampleConnectors) {
		t.Fatalf("%d connectors, want %d", len(gw.Connectors), len(sampleConnectors))
	}
	ids := map[string]bool{}
	for i, c := range gw.Connectors {
		want, err := os.ReadFile(filepath.Join(src, sampleConnectors[i].file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.Raw, bytes.TrimSpace(want)) {
			t.Errorf("%s: Raw is not the file's content", c.Name)
		}
		if c.Path != filepath.Join(dir, sampleConnectors[i].file) || c.Type != sampleConnectors[i].typ {
			t.Errorf("%s: Path %q Type %q", c.Name, c.Path, c.Type)
		}
		if ids[c.ID] || c.ID == "" {
			t.Errorf("%s: id %q empty or repeated", c.Name, c.ID)
		}
		ids[c.ID] = true
		wantLevel := "INFO"
		if sampleConnectors[i].file == "custom_serial.json" {
			wantLevel = "DEBUG"
		}
		if c.LogLevel != wantLevel {
			t.Errorf("%s: LogLevel %q, want %q", c.Name, c.LogLevel, wantLevel)
		}
	}
}

// TestSampleYAML loads the last YAML form of the main file.
func TestSampleYAML(t *testing.T) {
	root := tbConfigs(t)
	dir := t.TempDir()
	copyFile(t, filepath.Join(root, "yaml-2023", "tb_gateway.yaml"), filepath.Join(dir, "tb_gateway.yaml"))
	copyFile(t, filepath.Join(root, "3.8.3", "mqtt.json"), filepath.Join(dir, "mqtt.json"))
	gw, warns, err := LoadWith(filepath.Join(dir, "tb_gateway.yaml"), LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, w := range warns {
		t.Errorf("unexpected warning: %s", w)
	}
	tb := gw.Thingsboard
	if tb.Security.Type != "accessToken" || tb.Security.AccessToken != "PUT_YOUR_GW_ACCESS_TOKEN_HERE" ||
		tb.Statistics.StatsSendPeriodInSeconds != 3600 || tb.MaxPayloadSizeBytes != 1024 ||
		tb.CheckingDeviceActive.InactivityTimeoutSeconds != 120 {
		t.Errorf("thingsboard: %+v", tb)
	}
	if len(gw.Connectors) != 1 || gw.Connectors[0].Name != "MQTT Broker Connector" || gw.Connectors[0].Type != "mqtt" ||
		!json.Valid(gw.Connectors[0].Raw) {
		t.Errorf("connectors: %+v", gw.Connectors)
	}
}

// TestSamplesLoadAsConnectorFiles reads every JSON file of the samples with
// LoadConnectorFile (the reload path).
func TestSamplesLoadAsConnectorFiles(t *testing.T) {
	src := filepath.Join(tbConfigs(t), "3.8.3")
	files, err := filepath.Glob(filepath.Join(src, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		if _, err := LoadConnectorFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// FuzzLoad feeds arbitrary main-file bytes to Load: it must never panic, must
// return either a Gateway or *Errors, and every error and warning must be one line.
func FuzzLoad(f *testing.F) {
	if root, ok := sampleRoot(); ok {
		for _, name := range []string{"3.8.3/tb_gateway.json", "3.8.3/custom_serial.json", "3.8.3/list.json"} {
			if b, err := os.ReadFile(filepath.Join(root, name)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(minimal))
	f.Add([]byte(tbHead + `[{"name":"a","type":"serial","configuration":"c.json"},{"name":"a","configurationJson":{"logLevel":"x"}}]}`))
	// One folder for all runs: a fresh t.TempDir per input would dominate the run
	// time (calls within a fuzz worker are sequential).
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.json"), []byte(`{"logLevel":"DEBUG"}`), 0o644); err != nil {
		f.Fatal(err)
	}
	p := filepath.Join(dir, "tb_gateway.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		gw, warns, err := LoadWith(p, LoadOptions{Getenv: noEnv})
		if (gw == nil) == (err == nil) {
			t.Fatalf("gw %v with err %v", gw != nil, err)
		}
		for _, w := range warns {
			if strings.ContainsAny(w.String(), "\r\n") {
				t.Errorf("warning spans lines: %q", w.String())
			}
		}
		if err != nil {
			var list *Errors
			if !errors.As(err, &list) || len(list.List) == 0 {
				t.Fatalf("error is not a non-empty *Errors: %v", err)
			}
			for _, e := range list.List {
				if strings.ContainsAny(e.Error(), "\r\n") {
					t.Errorf("error spans lines: %q", e.Error())
				}
			}
		}
	})
}

// FuzzLoadYAML is FuzzLoad for the YAML form of the main file.
func FuzzLoadYAML(f *testing.F) {
	if root, ok := sampleRoot(); ok {
		if b, err := os.ReadFile(filepath.Join(root, "yaml-2023/tb_gateway.yaml")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("thingsboard:\n  host: h\n  security: {accessToken: a}\nconnectors:\n  - {name: a, type: serial, configuration: c.json}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("a: &a [1,2]\nb: &b [*a,*a]\nc: &c [*b,*b]\nthingsboard: [*c,*c]\n"))
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.json"), []byte(`{"logLevel":"DEBUG"}`), 0o644); err != nil {
		f.Fatal(err)
	}
	p := filepath.Join(dir, "tb_gateway.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		gw, _, err := LoadWith(p, LoadOptions{Getenv: noEnv})
		if (gw == nil) == (err == nil) {
			t.Fatalf("gw %v with err %v", gw != nil, err)
		}
		var list *Errors
		if err != nil && (!errors.As(err, &list) || len(list.List) == 0) {
			t.Fatalf("error is not a non-empty *Errors: %v", err)
		}
	})
}

// BenchmarkLoadSample383 measures a full load: the 3.8.3 main file and its 17
// connector files.
func BenchmarkLoadSample383(b *testing.B) {
	mainPath := writeSample383(b, filepath.Join(tbConfigs(b), "3.8.3"))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := LoadWith(mainPath, LoadOptions{Getenv: noEnv}); err != nil {
			b.Fatal(err)
		}
	}
}
