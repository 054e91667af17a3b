package extensions

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/iotgw/iotgw/connector"
	_ "github.com/iotgw/iotgw/connectors/serial" // registers SerialConnector and its converters
)

// TestSerialWithStarlarkConverter runs the built-in serial connector on a real
// pseudo-terminal with the example BinaryUplink.star as the device's converter,
// found through Converters as the gateway wires it.
func TestSerialWithStarlarkConverter(t *testing.T) {
	factory, ok := connector.Lookup("serial", "SerialConnector")
	if !ok {
		t.Skip("serial connector not registered")
	}
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	link := filepath.Join(t.TempDir(), "ttyBIN")
	if err := os.Symlink(slave.Name(), link); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the connector opens the slave itself

	raw := `{"name": "Binary serial sensor", "devices": [{"name": "BinarySensor1", "type": "thermometer",
		"port": ` + jsonString(link) + `, "baudrate": 9600, "delimiter": "\r\n", "converter": "BinaryUplink"}]}`
	ext := New("../examples/extensions", nil)
	gw := &testGateway{}
	log, lb := newLogger()
	c, err := factory(gw, connector.Config{Name: "Binary serial sensor", Type: "serial", Class: "SerialConnector",
		Raw: json.RawMessage(raw), Logger: log, ExtensionsDir: ext.Dir(),
		Converters: ext.Converters(connector.BuiltinConverters{Logger: log}, "serial")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "port open", 5*time.Second, c.IsConnected)

	before := time.Now().UnixMilli()
	// 23.5 °C 90 %, a frame too short for the script, then -10.0 °C 100 %.
	if _, err := master.Write([]byte{0x00, 0xeb, 0x5a, '\r', '\n', 0x01, '\r', '\n', 0xff, 0x9c, 0x64, '\r', '\n'}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two records", 5*time.Second, func() bool { return len(mustData(gw)) >= 2 })
	data := mustData(gw)
	want := []string{
		"BinarySensor1/thermometer ts=TS temperature=23.5 battery=90",
		"BinarySensor1/thermometer ts=TS temperature=-10 battery=100",
	}
	for i, w := range want {
		ts := data[i].Telemetry[0].TS
		if ts < before || ts > time.Now().UnixMilli() {
			t.Errorf("record %d: ts %d is not the time the frame was read", i, ts)
		}
		if got := strings.Replace(dataJSON(data[i]), " ts="+itoa(ts), " ts=TS", 1); got != w {
			t.Errorf("record %d: got %s, want %s", i, got, w)
		}
	}
	if !strings.Contains(lb.String(), "BinaryUplink.star:24:13: convert: fail: expected 3 bytes before the delimiter, got 1 (frame 010d0a)") {
		t.Errorf("short frame not logged with script, line and frame:\n%s", lb.String())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
