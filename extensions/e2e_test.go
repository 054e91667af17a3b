package extensions_test

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/gatewaytest"

	"github.com/creack/pty"

	"github.com/iotgw/iotgw/config"
	_ "github.com/iotgw/iotgw/connectors/serial" // registers SerialConnector
	"github.com/iotgw/iotgw/extensions"
	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/internal/brokertest"
)

// TestGatewayEndToEnd runs the example configuration (examples/extensions/config) in
// the real gateway core against the embedded broker, wired with the example
// extensions folder as the CLI wires it: the Python process connector's telemetry,
// an RPC to it and its reply, and the serial connector on a pseudo-terminal decoding
// binary frames with the Starlark converter.
func TestGatewayEndToEnd(t *testing.T) {
	b := brokertest.Start(t, "EXT_TOKEN")
	dir := t.TempDir()

	master, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	link := filepath.Join(dir, "ttyEXT")
	if err := os.Symlink(s.Name(), link); err != nil {
		t.Fatal(err)
	}
	s.Close()
	loadavg := filepath.Join(dir, "loadavg")
	if err := os.WriteFile(loadavg, []byte("1.25 0.5 0.75 3/210 999\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	src := "../examples/extensions/config/"
	copyEdited(t, src+"tb_gateway.json", filepath.Join(dir, "tb_gateway.json"),
		`"127.0.0.1"`, strconv.Quote(b.Host()), `"port": 1883`, `"port": `+strconv.Itoa(b.Port()),
		`"YOUR_GATEWAY_TOKEN"`, `"EXT_TOKEN"`)
	copyEdited(t, src+"loadavg.json", filepath.Join(dir, "loadavg.json"),
		`"pollPeriod": 5`, `"pollPeriod": 0.2`, `"/proc/loadavg"`, strconv.Quote(loadavg))
	copyEdited(t, src+"binary_serial.json", filepath.Join(dir, "binary_serial.json"),
		`"/dev/ttyUSB0"`, strconv.Quote(link))

	cfg, _, err := config.Load(filepath.Join(dir, "tb_gateway.json"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ext := extensions.New("../examples/extensions", log)
	gw, err := gateway.New(cfg, gateway.Options{Logger: log, Version: "test",
		ConnectorFactory: ext.ConnectorFactory, Converters: ext.Converters, ExtensionsDir: ext.Dir()})
	if err != nil {
		t.Fatal(err)
	}
	defer gatewaytest.Run(t, gw)()

	// The process connector: connect, then telemetry read from the file.
	if _, ok := b.WaitFor("v1/gateway/connect", func(m brokertest.Msg) bool {
		return string(m.Payload) == `{"device":"Gateway host","type":"host"}`
	}, 15*time.Second); !ok {
		t.Fatalf("no connect message; got %v", b.Messages(""))
	}
	tel := regexp.MustCompile(`^\{"Gateway host":\[\{"ts":\d{13},"values":\{"load1":1.25,"load5":0.5,"load15":0.75,"running":3,"processes":210\}\}\]\}$`)
	if _, ok := b.WaitFor("v1/gateway/telemetry", func(m brokertest.Msg) bool { return tel.Match(m.Payload) }, 10*time.Second); !ok {
		t.Fatalf("no load telemetry; got %v", b.Messages("v1/gateway/telemetry"))
	}
	b.Publish("v1/gateway/rpc", []byte(`{"device":"Gateway host","data":{"id":11,"method":"getLoad","params":{}}}`))
	want := `{"device":"Gateway host","id":11,"data":{"load1":1.25,"load5":0.5,"load15":0.75,"running":3,"processes":210}}`
	if _, ok := b.WaitFor("v1/gateway/rpc", func(m brokertest.Msg) bool { return string(m.Payload) == want }, 10*time.Second); !ok {
		t.Fatalf("no RPC reply %s; rpc messages: %v", want, b.Messages("v1/gateway/rpc"))
	}

	// The serial connector with the Starlark converter.
	if _, ok := b.WaitFor("v1/gateway/connect", func(m brokertest.Msg) bool {
		return string(m.Payload) == `{"device":"BinarySensor1","type":"thermometer"}`
	}, 10*time.Second); !ok {
		t.Fatalf("serial device not announced; got %v", b.Messages("v1/gateway/connect"))
	}
	if _, err := master.Write([]byte{0xff, 0x9c, 0x64, '\r', '\n'}); err != nil {
		t.Fatal(err)
	}
	bin := regexp.MustCompile(`^\{"BinarySensor1":\[\{"ts":\d{13},"values":\{"temperature":-10,"battery":100\}\}\]\}$`)
	if _, ok := b.WaitFor("v1/gateway/telemetry", func(m brokertest.Msg) bool { return bin.Match(m.Payload) }, 10*time.Second); !ok {
		t.Fatalf("no binary sensor telemetry; got %v", b.Messages("v1/gateway/telemetry"))
	}
}

// copyEdited copies a file, applying old/new string pairs, and fails if one of them
// does not occur (the example changed under the test).
func copyEdited(t *testing.T, from, to string, oldNew ...string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("%s has no %s", from, oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	if err := os.WriteFile(to, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
