package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/connector"
)

// setup writes files into a fresh folder and makes it the working directory, so
// that errors name "tb_gateway.json" as a user who runs iotgw there sees it.
func setup(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	return dir
}

// noEnv is a Getenv that sees no variables.
func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// loadIn writes files, loads main from that folder and returns the result with
// the folder's path replaced by $DIR in error and warning text.
func loadIn(t *testing.T, main string, files map[string]string, env map[string]string) (*Gateway, string, []string) {
	t.Helper()
	dir := setup(t, files)
	gw, warns, err := LoadWith(main, LoadOptions{Getenv: envOf(env)})
	var ws []string
	for _, w := range warns {
		ws = append(ws, strings.ReplaceAll(w.String(), dir, "$DIR"))
	}
	if err != nil {
		if gw != nil {
			t.Errorf("Load returned a Gateway with an error")
		}
		var list *Errors
		if !errors.As(err, &list) {
			t.Fatalf("error %T is not *Errors: %v", err, err)
		}
		return nil, strings.ReplaceAll(err.Error(), dir, "$DIR"), ws
	}
	return gw, "", ws
}

const minimal = `{"thingsboard":{"host":"tb.example","security":{"accessToken":"T0K3N"}}}`

func TestDefaults(t *testing.T) {
	gw, errText, warns := loadIn(t, "tb_gateway.json", map[string]string{"tb_gateway.json": minimal}, nil)
	if errText != "" || len(warns) > 0 {
		t.Fatalf("errors %q, warnings %q", errText, warns)
	}
	dir, _ := os.Getwd()
	want := &Gateway{
		Path: filepath.Join(dir, "tb_gateway.json"),
		Dir:  dir,
		Thingsboard: Thingsboard{
			Host:                 "tb.example",
			Port:                 1883,
			QoS:                  1,
			KeepAlive:            120,
			Security:             Security{Type: "accessToken", AccessToken: "T0K3N"},
			ReportStrategy:       connector.ReportStrategy{Type: "ON_RECEIVED"},
			MinPackSendDelayMS:   200,
			MinPackSizeToSend:    50,
			HandleDeviceRenaming: true,
			Statistics: Statistics{Enable: true, StatsSendPeriodInSeconds: 60,
				CustomStatsSendPeriodInSeconds: 3600},
			CheckingDeviceActive:          DeviceActivity{InactivityTimeoutSeconds: 300, InactivityCheckPeriodSeconds: 10},
			SyncSharedAttributesOnConnect: true,
		},
		Storage: Storage{
			Type:                    "memory",
			MaxRecordsCount:         100000,
			ReadRecordsCount:        100,
			DataFolderPath:          filepath.Join(dir, "data"),
			MaxFileCount:            10,
			MaxRecordsPerFile:       10000,
			MaxReadRecords:          10,
			DataFilePath:            filepath.Join(dir, "data", "data.db"),
			MessagesTTLCheckInHours: 1,
			MessagesTTLInDays:       7,
		},
	}
	if !reflect.DeepEqual(gw, want) {
		t.Errorf("got  %+v\nwant %+v", gw, want)
	}
}

func TestValues(t *testing.T) {
	main := `{
  "thingsboard": {
    "host": "10.0.0.5", "port": "8883", "qos": 0, "keepalive": 30,
    "security": {"type": "tlsPrivateKey", "caCert": "certs/ca.pem", "cert": "certs/c.pem", "privateKey": "/abs/key.pem"},
    "reportStrategy": {"type": "on_change_or_report_period", "reportPeriod": 5000, "ttl": 60},
    "maxPayloadSizeBytes": 8196, "minPackSendDelayMS": 0, "minPackSizeToSend": 1,
    "statistics": {"enable": false, "statsSendPeriodInSeconds": 1.0e2, "configuration": "statistics/s.json"},
    "deviceFiltering": {"enable": true, "filterFile": "list.json"},
    "checkingDeviceActivity": {"checkDeviceInactivity": true, "inactivityTimeoutSeconds": 60, "inactivityCheckPeriodSeconds": 5},
    "handleDeviceRenaming": false, "remoteConfiguration": true, "remoteShell": true,
    "checkConnectorsConfigurationInSeconds": 60, "syncDevicesSharedAttributesOnConnect": false
  },
  "storage": {"type": "sqlite", "data_file_path": "./db/", "messages_ttl_check_in_hours": 2,
    "messages_ttl_in_days": 3, "max_read_records_count": 50, "size_limit": 100, "max_db_amount": 4, "fsync_interval_ms": 20}
}`
	files := map[string]string{
		"conf/tb_gateway.json": main,
		"conf/certs/ca.pem":    "x", "conf/certs/c.pem": "x", "conf/list.json": "{}",
	}
	// An absolute key path, outside the configuration folder.
	key := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	files["conf/tb_gateway.json"] = strings.Replace(main, "/abs/key.pem", key, 1)
	dir := setup(t, files)
	gw, warns, err := LoadWith("conf/tb_gateway.json", LoadOptions{Getenv: noEnv})
	if err != nil || len(warns) > 0 {
		t.Fatalf("err %v, warnings %v", err, warns)
	}
	conf := filepath.Join(dir, "conf")
	tb := gw.Thingsboard
	wantTB := Thingsboard{
		Host: "10.0.0.5", Port: 8883, QoS: 0, KeepAlive: 30, TLS: true,
		Security: Security{Type: "tlsPrivateKey", CACert: filepath.Join(conf, "certs/ca.pem"),
			Cert: filepath.Join(conf, "certs/c.pem"), PrivateKey: key},
		ReportStrategy:      connector.ReportStrategy{Type: "ON_CHANGE_OR_REPORT_PERIOD", ReportPeriod: 5000, TTL: 60},
		MaxPayloadSizeBytes: 8196, MinPackSendDelayMS: 0, MinPackSizeToSend: 1,
		Statistics: Statistics{Enable: false, StatsSendPeriodInSeconds: 100, CustomStatsSendPeriodInSeconds: 3600,
			Configuration: filepath.Join(conf, "statistics/s.json")},
		DeviceFiltering:       DeviceFiltering{Enable: true, FilterFile: filepath.Join(conf, "list.json")},
		CheckingDeviceActive:  DeviceActivity{CheckDeviceInactivity: true, InactivityTimeoutSeconds: 60, InactivityCheckPeriodSeconds: 5},
		RemoteConfiguration:   true,
		RemoteShell:           true,
		CheckConnectorsConfig: 60,
	}
	if !reflect.DeepEqual(tb, wantTB) {
		t.Errorf("thingsboard\ngot  %+v\nwant %+v", tb, wantTB)
	}
	wantSt := Storage{Type: "sqlite", MaxRecordsCount: 100000, ReadRecordsCount: 100,
		DataFolderPath: filepath.Join(conf, "data"), MaxFileCount: 10, MaxRecordsPerFile: 10000,
		MaxReadRecords: 50, DataFilePath: filepath.Join(conf, "db/data.db"), MessagesTTLCheckInHours: 2,
		MessagesTTLInDays: 3, SizeLimitMB: 100, MaxDBAmount: 4, FsyncIntervalMS: 20}
	if !reflect.DeepEqual(gw.Storage, wantSt) {
		t.Errorf("storage\ngot  %+v\nwant %+v", gw.Storage, wantSt)
	}
	if gw.Dir != conf || gw.Path != filepath.Join(conf, "tb_gateway.json") {
		t.Errorf("Dir %q Path %q", gw.Dir, gw.Path)
	}
}

func TestSecurityAndTLS(t *testing.T) {
	tests := []struct {
		name     string
		tb       string
		wantType string
		wantTLS  bool
	}{
		{"old file: token only", `"security":{"accessToken":"a"}`, "accessToken", false},
		{"old file: username only", `"security":{"username":"u"}`, "usernamePassword", false},
		{"old file: client certificate", `"security":{"cert":"c.pem","privateKey":"k.pem"}`, "tlsPrivateKey", true},
		{"tls flag in thingsboard", `"tls":true,"security":{"type":"accessToken","accessToken":"a"}`, "accessToken", true},
		{"tls flag in security", `"security":{"type":"accessToken","accessToken":"a","tls":true}`, "accessToken", true},
		{"port 8883", `"port":8883,"security":{"type":"accessToken","accessToken":"a"}`, "accessToken", true},
		{"CA certificate", `"security":{"type":"accessToken","accessToken":"a","caCert":"ca.pem"}`, "accessToken", true},
		{"tlsAccessToken without CA", `"security":{"type":"tlsAccessToken","accessToken":"a"}`, "tlsAccessToken", true},
		{"usernamePassword, username only", `"security":{"type":"usernamePassword","username":"u"}`, "usernamePassword", false},
		{"plain", `"security":{"type":"accessToken","accessToken":"a"}`, "accessToken", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			main := `{"thingsboard":{"host":"h",` + tt.tb + `}}`
			gw, errText, warns := loadIn(t, "tb_gateway.json", map[string]string{
				"tb_gateway.json": main, "c.pem": "c", "k.pem": "k", "ca.pem": "ca"}, nil)
			if errText != "" || len(warns) > 0 {
				t.Fatalf("errors %q warnings %q", errText, warns)
			}
			if gw.Thingsboard.Security.Type != tt.wantType || gw.Thingsboard.TLS != tt.wantTLS {
				t.Errorf("type %q TLS %v, want %q %v", gw.Thingsboard.Security.Type, gw.Thingsboard.TLS, tt.wantType, tt.wantTLS)
			}
		})
	}
}

func TestLegacyKeys(t *testing.T) {
	main := `{"thingsboard":{"host":"h","security":{"accessToken":"a"},"sendDataOnlyOnChange":true,"statsSendPeriodInSeconds":3600}}`
	gw, errText, warns := loadIn(t, "tb_gateway.json", map[string]string{"tb_gateway.json": main}, nil)
	if errText != "" || len(warns) > 0 {
		t.Fatalf("errors %q warnings %q", errText, warns)
	}
	if gw.Thingsboard.ReportStrategy.Type != connector.OnChange {
		t.Errorf("sendDataOnlyOnChange: report strategy %q, want ON_CHANGE", gw.Thingsboard.ReportStrategy.Type)
	}
	if gw.Thingsboard.Statistics.StatsSendPeriodInSeconds != 3600 {
		t.Errorf("old statsSendPeriodInSeconds: %d, want 3600", gw.Thingsboard.Statistics.StatsSendPeriodInSeconds)
	}
}

// TestErrors checks the exact text of every error, and that all of them are
// reported at once.
func TestErrors(t *testing.T) {
	const sec = `"security":{"accessToken":"a"}`
	tests := []struct {
		name  string
		main  string // tb_gateway.json unless it starts with "file:"
		files map[string]string
		env   map[string]string
		want  string
	}{
		{name: "port not a number",
			main: `{"thingsboard":{"host":"h","port":"abc",` + sec + `}}`,
			want: `tb_gateway.json: thingsboard.port: wrong type (expected an integer, got "abc")`},
		{name: "port fractional",
			main: `{"thingsboard":{"host":"h","port":1883.5,` + sec + `}}`,
			want: `tb_gateway.json: thingsboard.port: wrong type (expected an integer, got 1883.5)`},
		{name: "port out of range",
			main: `{"thingsboard":{"host":"h","port":70000,` + sec + `}}`,
			want: `tb_gateway.json: thingsboard.port: out of range (expected an integer from 1 to 65535, got 70000)`},
		{name: "port zero",
			main: `{"thingsboard":{"host":"h","port":0,` + sec + `}}`,
			want: `tb_gateway.json: thingsboard.port: out of range (expected an integer from 1 to 65535, got 0)`},
		{name: "qos 2",
			main: `{"thingsboard":{"host":"h","qos":2,` + sec + `}}`,
			want: `tb_gateway.json: thingsboard.qos: invalid value (expected 0 or 1, got 2)`},
		{name: "keep_alive negative",
			main: `{"thingsboard":{"host":"h","keep_alive":-1,` + sec + `}}`,
			want: `tb_gateway.json: thingsboard.keep_alive: out of range (expected an integer from 0 to 65535, got -1)`},
		{name: "host missing",
			main: `{"thingsboard":{` + sec + `}}`,
			want: `tb_gateway.json: thingsboard.host: missing (expected the platform's host name or address, got nothing)`},
		{name: "host wrong type is not also missing",
			main: `{"thingsboard":{"host":5,` + sec + `}}`,
			want: `tb_gateway.json: thingsboard.host: wrong type (expected a string, got 5)`},
		{name: "boolean wrong type",
			main: `{"thingsboard":{"host":"h","remoteShell":"yes",` + sec + `}}`,
			want: `tb_gateway.json: thingsboard.remoteShell: wrong type (expected true or false, got "yes")`},
		{name: "section wrong type",
			main: `{"thingsboard":{"host":"h","statistics":[1],` + sec + `}}`,
			want: `tb_gateway.json: thingsboard.statistics: wrong type (expected an object, got an array)`},
		{name: "no thingsboard section",
			main: `{"storage":{}}`,
			want: "tb_gateway.json: thingsboard.host: missing (expected the platform's host name or address, got nothing)\n" +
				"tb_gateway.json: thingsboard.security: missing (expected an object with type and credentials, got nothing)"},
		{name: "security type unknown",
			main: `{"thingsboard":{"host":"h","security":{"type":"token","accessToken":"a"}}}`,
			want: `tb_gateway.json: thingsboard.security.type: invalid value (expected one of accessToken, usernamePassword, tlsAccessToken, tlsPrivateKey, got "token")`},
		{name: "security without credentials",
			main: `{"thingsboard":{"host":"h","security":{}}}`,
			want: `tb_gateway.json: thingsboard.security.type: missing (expected one of accessToken, usernamePassword, tlsAccessToken, tlsPrivateKey, got nothing)`},
		{name: "accessToken missing",
			main: `{"thingsboard":{"host":"h","security":{"type":"accessToken"}}}`,
			want: `tb_gateway.json: thingsboard.security.accessToken: missing (expected the gateway device's access token for security type accessToken, got nothing)`},
		{name: "tlsAccessToken missing token",
			main:  `{"thingsboard":{"host":"h","security":{"type":"tlsAccessToken","caCert":"ca.pem"}}}`,
			files: map[string]string{"ca.pem": "x"},
			want:  `tb_gateway.json: thingsboard.security.accessToken: missing (expected the gateway device's access token for security type tlsAccessToken, got nothing)`},
		{name: "username missing",
			main: `{"thingsboard":{"host":"h","security":{"type":"usernamePassword","password":"p"}}}`,
			want: `tb_gateway.json: thingsboard.security.username: missing (expected an MQTT username for security type usernamePassword, got nothing)`},
		{name: "tlsPrivateKey without files",
			main: `{"thingsboard":{"host":"h","security":{"type":"tlsPrivateKey"}}}`,
			want: "tb_gateway.json: thingsboard.security.cert: missing (expected a client certificate file for security type tlsPrivateKey, got nothing)\n" +
				"tb_gateway.json: thingsboard.security.privateKey: missing (expected a private key file for security type tlsPrivateKey, got nothing)"},
		{name: "certificate files absent",
			main:  `{"thingsboard":{"host":"h","security":{"type":"tlsPrivateKey","caCert":"ca.pem","cert":"c.pem","privateKey":"k"}}}`,
			files: map[string]string{"k/x": ""},
			want: "tb_gateway.json: thingsboard.security.caCert: cannot read CA certificate (expected a file at $DIR/ca.pem, got \"no such file or directory\")\n" +
				"tb_gateway.json: thingsboard.security.cert: cannot read client certificate (expected a file at $DIR/c.pem, got \"no such file or directory\")\n" +
				"tb_gateway.json: thingsboard.security.privateKey: cannot read private key (expected a file at $DIR/k, got \"not a regular file\")"},
		{name: "filter file absent when filtering is on",
			main: `{"thingsboard":{"host":"h",` + sec + `,"deviceFiltering":{"enable":true,"filterFile":"list.json"}}}`,
			want: `tb_gateway.json: thingsboard.deviceFiltering.filterFile: cannot read filter file (expected a file at $DIR/list.json, got "no such file or directory")`},
		{name: "filter file not named when filtering is on",
			main: `{"thingsboard":{"host":"h",` + sec + `,"deviceFiltering":{"enable":true}}}`,
			want: `tb_gateway.json: thingsboard.deviceFiltering.filterFile: missing (expected a filter file when enable is true, got nothing)`},
		{name: "statistics commands file absent",
			main: `{"thingsboard":{"host":"h",` + sec + `,"statistics":{"enable":true,"configuration":"s.json"}}}`,
			want: `tb_gateway.json: thingsboard.statistics.configuration: cannot read custom statistics file (expected a file at $DIR/s.json, got "no such file or directory")`},
		{name: "statistics period zero",
			main: `{"thingsboard":{"host":"h",` + sec + `,"statistics":{"statsSendPeriodInSeconds":0}}}`,
			want: `tb_gateway.json: thingsboard.statistics.statsSendPeriodInSeconds: out of range (expected an integer >= 1, got 0)`},
		{name: "inactivity timeout zero",
			main: `{"thingsboard":{"host":"h",` + sec + `,"checkingDeviceActivity":{"inactivityTimeoutSeconds":0}}}`,
			want: `tb_gateway.json: thingsboard.checkingDeviceActivity.inactivityTimeoutSeconds: out of range (expected an integer >= 1, got 0)`},
		{name: "report strategy type unknown",
			main: `{"thingsboard":{"host":"h",` + sec + `,"reportStrategy":{"type":"ALWAYS"}}}`,
			want: `tb_gateway.json: thingsboard.reportStrategy.type: invalid value (expected one of ON_RECEIVED, ON_CHANGE, ON_REPORT_PERIOD, ON_CHANGE_OR_REPORT_PERIOD, DISABLED, got "ALWAYS")`},
		{name: "report strategy period missing",
			main: `{"thingsboard":{"host":"h",` + sec + `,"reportStrategy":{"type":"ON_REPORT_PERIOD"}}}`,
			want: `tb_gateway.json: thingsboard.reportStrategy.reportPeriod: missing or not positive for ON_REPORT_PERIOD (expected a period in milliseconds > 0, got 0)`},
		{name: "report strategy without type",
			main: `{"thingsboard":{"host":"h",` + sec + `,"reportStrategy":{"reportPeriod":100}}}`,
			want: `tb_gateway.json: thingsboard.reportStrategy.type: missing (expected one of ON_RECEIVED, ON_CHANGE, ON_REPORT_PERIOD, ON_CHANGE_OR_REPORT_PERIOD, DISABLED, got nothing)`},
		{name: "storage type unknown",
			main: `{"thingsboard":{"host":"h",` + sec + `},"storage":{"type":"redis"}}`,
			want: `tb_gateway.json: storage.type: invalid value (expected one of memory, file, sqlite, got "redis")`},
		{name: "memory storage size zero",
			main: `{"thingsboard":{"host":"h",` + sec + `},"storage":{"type":"memory","max_records_count":0}}`,
			want: `tb_gateway.json: storage.max_records_count: out of range (expected an integer >= 1, got 0)`},
		{name: "file storage counts",
			main: `{"thingsboard":{"host":"h",` + sec + `},"storage":{"type":"file","max_file_count":0,"max_records_per_file":-5}}`,
			want: "tb_gateway.json: storage.max_file_count: out of range (expected an integer >= 1, got 0)\n" +
				"tb_gateway.json: storage.max_records_per_file: out of range (expected an integer >= 1, got -5)"},
		{name: "sqlite ttl",
			main: `{"thingsboard":{"host":"h",` + sec + `},"storage":{"type":"sqlite","messages_ttl_in_days":0}}`,
			want: `tb_gateway.json: storage.messages_ttl_in_days: out of range (expected an integer >= 1, got 0)`},
		{name: "several errors at once, in file order",
			main: `{"thingsboard":{"host":"h","port":"x","qos":"y",` + sec + `},"storage":{"type":1}}`,
			want: "tb_gateway.json: thingsboard.port: wrong type (expected an integer, got \"x\")\n" +
				"tb_gateway.json: thingsboard.qos: wrong type (expected an integer, got \"y\")\n" +
				"tb_gateway.json: storage.type: wrong type (expected a string, got 1)"},
		{name: "syntax error",
			main: "{\n  \"thingsboard\": {\n    \"host\": h\n  }\n}",
			want: `tb_gateway.json:3:13: invalid character 'h' looking for beginning of value`},
		{name: "trailing comma",
			main: "{\"thingsboard\": {\"host\": \"h\",}}",
			want: `tb_gateway.json:1:30: invalid character '}' looking for beginning of object key string`},
		{name: "truncated",
			main: "{\"thingsboard\": {\n",
			want: `tb_gateway.json:2:1: unexpected end of JSON input`},
		{name: "data after the value",
			main: "{}\n {}",
			want: `tb_gateway.json:2:2: unexpected data after the top-level value`},
		{name: "not an object",
			main: `[1,2]`,
			want: `tb_gateway.json: wrong type (expected an object with thingsboard, storage and connectors, got an array)`},
		{name: "yaml syntax",
			main:  "file:tb_gateway.yaml",
			files: map[string]string{"tb_gateway.yaml": "thingsboard:\n  host: h\n  port: 1: 2\n"},
			want:  `tb_gateway.yaml:3: mapping values are not allowed in this context`},
		{name: "yaml complex key",
			main:  "file:tb_gateway.yaml",
			files: map[string]string{"tb_gateway.yaml": "thingsboard:\n  ? [a]\n  : 1\n"},
			want:  `tb_gateway.yaml:2: mapping key is not a scalar (expected a key name, got a sequence)`},
		{name: "yaml alias bomb",
			main: "file:tb_gateway.yaml",
			files: map[string]string{"tb_gateway.yaml": "a: &a [1,2,3,4,5,6,7,8,9,10]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n" +
				"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\nthingsboard: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"},
			want: `tb_gateway.yaml:1: document too large (expected at most 100000 values after alias expansion)`},
		{name: "yaml types",
			main:  "file:tb_gateway.yml",
			files: map[string]string{"tb_gateway.yml": "thingsboard:\n  host: h\n  port: [1]\n  security: {accessToken: a}\n"},
			want:  `tb_gateway.yml: thingsboard.port: wrong type (expected an integer, got an array)`},
		{name: "extension",
			main:  "file:tb_gateway.toml",
			files: map[string]string{"tb_gateway.toml": ""},
			want:  `tb_gateway.toml: unsupported file extension (expected .json, .yaml or .yml, got ".toml")`},
		{name: "main file absent",
			main:  "file:nope.json",
			files: map[string]string{},
			want:  `nope.json: cannot read file: no such file or directory`},
		{name: "env port not a number",
			main: minimal,
			env:  map[string]string{"TB_GW_PORT": "x"},
			want: `environment: TB_GW_PORT: wrong type (expected an integer, got "x")`},
		{name: "env port out of range",
			main: minimal,
			env:  map[string]string{"TB_GW_PORT": "0"},
			want: `environment: TB_GW_PORT: out of range (expected an integer from 1 to 65535, got 0)`},
		{name: "env security type",
			main: minimal,
			env:  map[string]string{"TB_GW_SECURITY_TYPE": "x509"},
			want: `environment: TB_GW_SECURITY_TYPE: invalid value (expected one of accessToken, usernamePassword, tlsAccessToken, tlsPrivateKey, got "x509")`},
		{name: "env CA certificate absent",
			main: minimal,
			env:  map[string]string{"TB_GW_CA_CERT": "/nonexistent/ca.pem"},
			want: `environment: TB_GW_CA_CERT: cannot read CA certificate (expected a file at /nonexistent/ca.pem, got "no such file or directory")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range tt.files {
				files[k] = v
			}
			mainFile := "tb_gateway.json"
			if name, ok := strings.CutPrefix(tt.main, "file:"); ok {
				mainFile = name
			} else {
				files[mainFile] = tt.main
			}
			_, got, _ := loadIn(t, mainFile, files, tt.env)
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestErrorsUnwrap(t *testing.T) {
	setup(t, map[string]string{"tb_gateway.json": `{"thingsboard":{"host":"h","port":0,"security":{"accessToken":"a"}},
		"connectors":[{"name":"a","type":"serial","configuration":"missing.json"}]}`})
	_, _, err := LoadWith("tb_gateway.json", LoadOptions{Getenv: noEnv})
	var list *Errors
	if !errors.As(err, &list) || len(list.List) != 2 {
		t.Fatalf("want *Errors with 2 items, got %v", err)
	}
	if e := list.List[0]; e.File != "tb_gateway.json" || e.Path != "thingsboard.port" ||
		e.Msg != "out of range (expected an integer from 1 to 65535, got 0)" {
		t.Errorf("item 0: %+v", e)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) is false for a missing connector file")
	}
	var one *Error
	if !errors.As(err, &one) || one != list.List[0] {
		t.Errorf("errors.As(*Error) did not find the first item")
	}
}

func TestWarnings(t *testing.T) {
	main := `{
  "thingsboard": {"host": "h", "security": {"acessToken": "a", "accessToken": "a"}, "prot": 1883, "foo": 1,
    "reportStrategy": {"type": "ON_RECEIVED", "reportPeriodMs": 5},
    "host": "h2",
    "rateLimits": "DEFAULT", "grpc": {}},
  "storage": {"type": "memory", "max_record_count": 5},
  "grpc": {"anything": {"goes": true}},
  "logs": {},
  "connector": []
}`
	gw, errText, warns := loadIn(t, "tb_gateway.json", map[string]string{"tb_gateway.json": main}, nil)
	if errText != "" {
		t.Fatal(errText)
	}
	want := []string{
		`tb_gateway.json: thingsboard.security.acessToken: unknown key (ignored; did you mean "accessToken"?)`,
		`tb_gateway.json: thingsboard.prot: unknown key (ignored; did you mean "port"?)`,
		`tb_gateway.json: thingsboard.foo: unknown key (ignored)`,
		`tb_gateway.json: thingsboard.reportStrategy.reportPeriodMs: unknown key (ignored; did you mean "reportPeriod"?)`,
		`tb_gateway.json: thingsboard.host: duplicate key (the last one wins)`,
		`tb_gateway.json: thingsboard.grpc: unknown key (ignored)`,
		`tb_gateway.json: storage.max_record_count: unknown key (ignored; did you mean "max_records_count"?)`,
		`tb_gateway.json: connector: unknown key (ignored; did you mean "connectors"?)`,
	}
	if !reflect.DeepEqual(warns, want) {
		t.Errorf("warnings\n%s\nwant\n%s", strings.Join(warns, "\n"), strings.Join(want, "\n"))
	}
	if gw.Thingsboard.Host != "h2" {
		t.Errorf("host %q, want the last one, h2", gw.Thingsboard.Host)
	}
}

func TestQuotedKeyPaths(t *testing.T) {
	main := "{\"thingsboard\":{\"host\":\"h\",\"security\":{\"accessToken\":\"a\"},\"a.b\":1,\"line\\nbreak\":2}}"
	_, errText, warns := loadIn(t, "tb_gateway.json", map[string]string{"tb_gateway.json": main}, nil)
	if errText != "" {
		t.Fatal(errText)
	}
	want := []string{
		`tb_gateway.json: thingsboard."a.b": unknown key (ignored)`,
		`tb_gateway.json: thingsboard."line\nbreak": unknown key (ignored)`,
	}
	if !reflect.DeepEqual(warns, want) {
		t.Errorf("warnings %q, want %q", warns, want)
	}
}

func TestEnvOverrides(t *testing.T) {
	main := `{"thingsboard":{"host":"file-host","port":1883,"security":{"type":"accessToken","accessToken":"file-token"}}}`
	files := map[string]string{"tb_gateway.json": main, "certs/ca.pem": "ca", "certs/c.pem": "c", "certs/k.pem": "k"}
	t.Run("file only", func(t *testing.T) {
		gw, errText, _ := loadIn(t, "tb_gateway.json", files, nil)
		if errText != "" {
			t.Fatal(errText)
		}
		if gw.Thingsboard.Host != "file-host" || gw.Thingsboard.Security.AccessToken != "file-token" {
			t.Errorf("%+v", gw.Thingsboard)
		}
	})
	t.Run("all variables", func(t *testing.T) {
		env := map[string]string{
			"TB_GW_HOST": "env-host", "TB_GW_PORT": "8883", "TB_GW_SECURITY_TYPE": "tlsPrivateKey",
			"TB_GW_ACCESS_TOKEN": "env-token", "TB_GW_CA_CERT": "certs/ca.pem", "TB_GW_CERT": "certs/c.pem",
			"TB_GW_PRIVATE_KEY": "certs/k.pem", "TB_GW_CLIENT_ID": "cid", "TB_GW_USERNAME": "user",
			"TB_GW_PASSWORD": "pass",
		}
		gw, errText, _ := loadIn(t, "tb_gateway.json", files, env)
		if errText != "" {
			t.Fatal(errText)
		}
		dir := gw.Dir
		want := Security{Type: "tlsPrivateKey", AccessToken: "env-token", ClientID: "cid", Username: "user",
			Password: "pass", CACert: filepath.Join(dir, "certs/ca.pem"), Cert: filepath.Join(dir, "certs/c.pem"),
			PrivateKey: filepath.Join(dir, "certs/k.pem")}
		if gw.Thingsboard.Host != "env-host" || gw.Thingsboard.Port != 8883 || !gw.Thingsboard.TLS ||
			gw.Thingsboard.Security != want {
			t.Errorf("got %+v", gw.Thingsboard)
		}
	})
	t.Run("docker style: no thingsboard section", func(t *testing.T) {
		env := map[string]string{"TB_GW_HOST": "h", "TB_GW_SECURITY_TYPE": "usernamePassword",
			"TB_GW_USERNAME": "u", "TB_GW_PASSWORD": "p"}
		gw, errText, _ := loadIn(t, "tb_gateway.json", map[string]string{"tb_gateway.json": `{}`}, env)
		if errText != "" {
			t.Fatal(errText)
		}
		s := gw.Thingsboard.Security
		if gw.Thingsboard.Host != "h" || s.Type != "usernamePassword" || s.Username != "u" || s.Password != "p" {
			t.Errorf("got %+v", gw.Thingsboard)
		}
	})
	t.Run("empty variable is unset", func(t *testing.T) {
		gw, errText, _ := loadIn(t, "tb_gateway.json", files, map[string]string{"TB_GW_HOST": ""})
		if errText != "" || gw.Thingsboard.Host != "file-host" {
			t.Errorf("err %q host %q", errText, gw.Thingsboard.Host)
		}
	})
	t.Run("Load reads the process environment", func(t *testing.T) {
		setup(t, files)
		t.Setenv("TB_GW_HOST", "process-host")
		gw, _, err := Load("tb_gateway.json")
		if err != nil || gw.Thingsboard.Host != "process-host" {
			t.Errorf("err %v host %q", err, gw.Thingsboard.Host)
		}
	})
}

func TestSlogLevel(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"TRACE", -8}, {"debug", -4}, {"Info", 0}, {"WARNING", 4}, {"warn", 4}, {"ERROR", 8},
		{"critical", 12}, {"", 0}, {"bogus", 0},
	}
	for _, tt := range tests {
		if got := SlogLevel(tt.in); int(got) != tt.want {
			t.Errorf("SlogLevel(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	if SlogLevel("NONE") <= SlogLevel("CRITICAL") {
		t.Errorf("NONE must be above CRITICAL")
	}
	for _, s := range []string{"TRACE", "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "NONE", "none", " info "} {
		if !ValidLogLevel(s) {
			t.Errorf("ValidLogLevel(%q) = false", s)
		}
	}
	if ValidLogLevel("VERBOSE") || ValidLogLevel("") {
		t.Errorf("ValidLogLevel accepts VERBOSE or empty")
	}
}

func TestValidateReportStrategy(t *testing.T) {
	tests := []struct {
		rs   *connector.ReportStrategy
		want string
	}{
		{nil, ""},
		{&connector.ReportStrategy{Type: "ON_RECEIVED"}, ""},
		{&connector.ReportStrategy{Type: "DISABLED"}, ""},
		{&connector.ReportStrategy{Type: "ON_CHANGE", TTL: 60}, ""},
		{&connector.ReportStrategy{Type: "ON_REPORT_PERIOD", ReportPeriod: 1}, ""},
		{&connector.ReportStrategy{Type: "ON_CHANGE_OR_REPORT_PERIOD"},
			"devices[0].reportStrategy.reportPeriod: missing or not positive for ON_CHANGE_OR_REPORT_PERIOD (expected a period in milliseconds > 0, got 0)"},
		{&connector.ReportStrategy{Type: "on_change"},
			`devices[0].reportStrategy.type: invalid value (expected one of ON_RECEIVED, ON_CHANGE, ON_REPORT_PERIOD, ON_CHANGE_OR_REPORT_PERIOD, DISABLED, got "on_change")`},
		{&connector.ReportStrategy{Type: "ON_CHANGE", ReportPeriod: -1, TTL: -2},
			"devices[0].reportStrategy.reportPeriod: negative (expected a period in milliseconds >= 0, got -1)\n" +
				"devices[0].reportStrategy.ttl: negative (expected seconds >= 0, got -2)"},
	}
	for _, tt := range tests {
		err := ValidateReportStrategy("devices[0].reportStrategy", tt.rs)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.rs, got, tt.want)
		}
	}
}

func TestParseReportStrategy(t *testing.T) {
	tests := []struct {
		raw  string
		want *connector.ReportStrategy
		err  string
	}{
		{`null`, nil, ""},
		{`{"type":"on_report_period","reportPeriod":"1000","ttl":5,"aggregationFunction":"AVERAGE"}`,
			&connector.ReportStrategy{Type: "ON_REPORT_PERIOD", ReportPeriod: 1000, TTL: 5}, ""},
		{`{"type":"ON_CHANGE"}`, &connector.ReportStrategy{Type: "ON_CHANGE"}, ""},
		{`5`, nil, `rs: wrong type (expected an object, got 5)`},
		{`{"type":5}`, nil, `rs.type: wrong type (expected a string, got 5)`},
		{`{"type":"ON_REPORT_PERIOD","reportPeriod":"soon"}`, nil,
			`rs.reportPeriod: wrong type (expected an integer, got "soon")`},
		{`"ON_CHANGE"`, nil, `rs: wrong type (expected an object, got "ON_CHANGE")`},
		{`{`, nil, `rs: invalid JSON (unexpected end of JSON input)`},
	}
	for _, tt := range tests {
		raw := tt.raw
		got, err := ParseReportStrategy("rs", []byte(raw))
		errText := ""
		if err != nil {
			errText = err.Error()
		}
		if errText != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, %q; want %+v, %q", raw, got, errText, tt.want, tt.err)
		}
	}
}
