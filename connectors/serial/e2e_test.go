package serial_test

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
	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/internal/brokertest"
)

// TestGatewayEndToEnd runs the example configuration (examples/serial) in the real
// gateway core against the embedded broker, with the device on a pseudo-terminal:
// frames become MQTT telemetry and attributes, an attribute update and an RPC with
// response reach the device and the reply reaches the platform.
func TestGatewayEndToEnd(t *testing.T) {
	b := brokertest.Start(t, "E2E_TOKEN")
	dir := t.TempDir()

	master, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	link := filepath.Join(dir, "ttyE2E")
	if err := os.Symlink(s.Name(), link); err != nil {
		t.Fatal(err)
	}
	s.Close()

	mainFile, err := os.ReadFile("../../examples/serial/tb_gateway.json")
	if err != nil {
		t.Fatal(err)
	}
	main := strings.NewReplacer(`"127.0.0.1"`, strconv.Quote(b.Host()), `"port": 1883`, `"port": `+strconv.Itoa(b.Port()),
		`"YOUR_ACCESS_TOKEN"`, `"E2E_TOKEN"`).Replace(string(mainFile))
	connFile, err := os.ReadFile("../../examples/serial/custom_serial.json")
	if err != nil {
		t.Fatal(err)
	}
	conn := strings.Replace(string(connFile), `"/dev/ttyUSB0"`, strconv.Quote(link), 1)
	if err := os.WriteFile(filepath.Join(dir, "tb_gateway.json"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "custom_serial.json"), []byte(conn), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(filepath.Join(dir, "tb_gateway.json"))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer gatewaytest.Run(t, gw)()

	// The device is announced when its port opens.
	if _, ok := b.WaitFor("v1/gateway/connect", func(m brokertest.Msg) bool {
		return string(m.Payload) == `{"device":"SerialDevice1","type":"default"}`
	}, 10*time.Second); !ok {
		t.Fatalf("no connect message; got %v", b.Messages(""))
	}

	if _, err := master.Write([]byte("48\r2430947595\n")); err != nil {
		t.Fatal(err)
	}
	tm, ok := b.WaitFor("v1/gateway/telemetry", nil, 10*time.Second)
	if !ok {
		t.Fatal("no telemetry")
	}
	if !regexp.MustCompile(`^\{"SerialDevice1":\[\{"ts":\d{13},"values":\{"humidity":48\}\}\]\}$`).Match(tm.Payload) {
		t.Errorf("telemetry %s", tm.Payload)
	}
	am, ok := b.WaitFor("v1/gateway/attributes", nil, 5*time.Second)
	if !ok || string(am.Payload) != `{"SerialDevice1":{"SerialNumber":"430947595"}}` {
		t.Errorf("attributes %s", am.Payload)
	}

	readDevice := func(n int) string {
		t.Helper()
		if err := master.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(master, buf); err != nil {
			t.Fatalf("device read: %v (%q)", err, buf)
		}
		return string(buf)
	}

	b.Publish("v1/gateway/attributes", []byte(`{"device":"SerialDevice1","data":{"attr1":25}}`))
	if got := readDevice(len("value = 25\n")); got != "value = 25\n" {
		t.Fatalf("device got %q", got)
	}

	b.Publish("v1/gateway/rpc", []byte(`{"device":"SerialDevice1","data":{"id":7,"method":"setValue","params":5}}`))
	if got := readDevice(1); got != "\x05" {
		t.Fatalf("device got %x", got)
	}
	if _, err := master.Write([]byte("OK\r\n")); err != nil {
		t.Fatal(err)
	}
	want := `{"device":"SerialDevice1","id":7,"data":{"result":"OK"}}`
	if _, ok := b.WaitFor("v1/gateway/rpc", func(m brokertest.Msg) bool { return string(m.Payload) == want }, 10*time.Second); !ok {
		t.Fatalf("no RPC reply %s; rpc messages: %v", want, b.Messages("v1/gateway/rpc"))
	}
}
