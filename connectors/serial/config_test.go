package serial

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// nopGateway is enough for a Factory, which must not touch the gateway.
type nopGateway struct{}

func (nopGateway) SendToStorage(string, string, *connector.ConvertedData) error { return nil }
func (nopGateway) AddDevice(string, string, connector.Connector)                {}
func (nopGateway) DelDevice(string)                                             {}
func (nopGateway) SendRPCReply(string, int, any) error                          { return nil }

func factoryConfig(raw []byte) connector.Config {
	return connector.Config{Name: "Serial Connector", Type: "serial", Class: "SerialConnector", ID: "id1",
		Path: "/etc/iotgw/custom_serial.json", Raw: raw, Logger: slog.New(slog.DiscardHandler),
		Converters: connector.BuiltinConverters{}}
}

// The example's connector file loads through the registered Factory, with the guide's
// values and the defaults.
func TestFactoryLoadsExample(t *testing.T) {
	f, ok := connector.Lookup("serial", "SerialConnector")
	if !ok {
		t.Fatal("serial/SerialConnector not registered")
	}
	if def, _ := connector.DefaultClass("serial"); def != "SerialConnector" {
		t.Fatalf("default class %q", def)
	}
	c, err := f(nopGateway{}, factoryConfig(guideConnectorFile(t)))
	if err != nil {
		t.Fatal(err)
	}
	sc := c.(*SerialConnector)
	if sc.Name() != "Serial Connector" || sc.Type() != "serial" || sc.ID() != "id1" || !sc.IsStopped() || sc.IsConnected() {
		t.Fatalf("identity/state: %q %q %q stopped=%v connected=%v", sc.Name(), sc.Type(), sc.ID(), sc.IsStopped(), sc.IsConnected())
	}
	if len(sc.devices) != 1 {
		t.Fatalf("%d devices", len(sc.devices))
	}
	d := sc.devices[0].cfg
	want := deviceConfig{name: "SerialDevice1", typ: "default", port: "/dev/ttyUSB0", baudrate: 9600, bytesize: 8,
		parity: 'N', stopbits: 1, timeout: time.Second, exclusive: true, byteOrder: "big",
		uplinkClass: "SerialUplinkConverter", downlinkClass: "SerialDownlinkConverter"}
	if d.name != want.name || d.typ != want.typ || d.port != want.port || d.baudrate != want.baudrate ||
		d.bytesize != want.bytesize || d.parity != want.parity || d.stopbits != want.stopbits ||
		d.timeout != want.timeout || d.exclusive != want.exclusive || d.byteOrder != want.byteOrder ||
		d.uplinkClass != want.uplinkClass || d.downlinkClass != want.downlinkClass {
		t.Errorf("device config %+v", d)
	}
	if d.framing.mode != modeDelimiter || string(d.framing.delim) != "\n" || d.framing.maxSize != 65536 {
		t.Errorf("framing %+v", d.framing)
	}
	if len(d.attributeUpdates) != 1 || d.attributeUpdates[0].attribute != "attr1" || d.attributeUpdates[0].stringToDevice != "value = ${attr1}\n" {
		t.Errorf("attributeUpdates %+v", d.attributeUpdates)
	}
	if len(d.rpcs) != 2 || d.rpcs[0].method != "setValue" || !d.rpcs[0].withResponse || d.rpcs[0].responseTimeout != 5*time.Second ||
		d.rpcs[0].response.typ != typeString || string(d.rpcs[0].response.untilDelim) != "\r" || d.rpcs[1].withResponse {
		t.Errorf("rpcs %+v", d.rpcs)
	}
	if sc.conf.uplinkQueueSize != 100000 || sc.conf.logLevel != "DEBUG" {
		t.Errorf("connector config %+v", sc.conf)
	}
	if err := sc.Close(); err != nil { // Close before Open is harmless
		t.Fatal(err)
	}
}

func TestConfigKeys(t *testing.T) {
	raw := `{"devices":[{"deviceName":"A","deviceType":"T","port":"/dev/ttyS1","baudrate":115200,"bytesize":7,
		"parity":"E","stopbits":2,"timeout":0.5,"rtscts":true,"dsrdtr":true,"xonxoff":true,"writeTimeout":2,
		"interByteTimeout":0.1,"exclusive":false,"delimiter":"0x0d0a","uplink_converter":"SerialUplinkConverter",
		"byteorder":"little","maxFrameSize":128},
		{"name":"B","timeout":null,"frameLength":16},{"name":"C","frameGapMs":20},{"name":"D","frameTimeoutMs":50.5},
		{"name":"E","delimiter":"END"}]}`
	c, err := parseConfig([]byte(raw), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := c.devices[0]
	if a.name != "A" || a.typ != "T" || a.port != "/dev/ttyS1" || a.baudrate != 115200 || a.bytesize != 7 || a.parity != 'E' ||
		a.stopbits != 2 || a.timeout != 500*time.Millisecond || !a.rtscts || !a.dsrdtr || !a.xonxoff ||
		a.writeTimeout != 2*time.Second || a.interByteTimeout != 100*time.Millisecond || a.exclusive ||
		!bytes.Equal(a.framing.delim, []byte("\r\n")) || a.byteOrder != "little" || a.framing.maxSize != 128 {
		t.Errorf("device A %+v", a)
	}
	if b := c.devices[1]; b.timeout != 0 || b.framing.mode != modeLength || b.framing.length != 16 {
		t.Errorf("device B %+v", b)
	}
	if d := c.devices[2]; d.framing.mode != modeGap || d.framing.period != 20*time.Millisecond {
		t.Errorf("device C %+v", d.framing)
	}
	if d := c.devices[3]; d.framing.mode != modeTimeout || d.framing.period != 50500*time.Microsecond {
		t.Errorf("device D %+v", d.framing)
	}
	if d := c.devices[4]; string(d.framing.delim) != "END" {
		t.Errorf("device E %+v", d.framing)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		raw  string
		want string
	}{
		{`{`, "invalid JSON"},
		{`[]`, "expected an object, got an array"},
		{`{"name":"x"}`, "devices: expected an array of device objects, got nothing"},
		{`{"devices":{}}`, "devices: expected an array of device objects, got an object"},
		{`{"devices":[5]}`, "devices[0]: expected an object, got 5"},
		{`{"devices":[{"telemetry":[{"key":"a"},{"key":"b","type":5}]}]}`, "devices[0].telemetry[1].type: expected a string, got 5"},
		{`{"devices":[{"timeseries":[{"type":"int"}]}]}`, "devices[0].timeseries[0].key: expected a non-empty key name, got null"},
		{`{"devices":[{"attributes":[{"key":"a","fromByte":"1"}]}]}`, `devices[0].attributes[0].fromByte: expected an integer, got "1"`},
		{`{"devices":[{"attributes":[{"key":"a","toByte":1.5}]}]}`, `devices[0].attributes[0].toByte: expected an integer, got 1.5`},
		{`{"devices":[{"name":"a"},{"name":"b","bytesize":9}]}`, "devices[1].bytesize: expected 5, 6, 7 or 8, got 9"},
		{`{"devices":[{"parity":"X"}]}`, `devices[0].parity: expected "N", "E", "O", "M" or "S", got "X"`},
		{`{"devices":[{"stopbits":1.5}]}`, "devices[0].stopbits: expected 1 or 2 (1.5 stop bits are not supported by the serial driver on Linux), got 1.5"},
		{`{"devices":[{"stopbits":3}]}`, "devices[0].stopbits: expected 1, 1.5 or 2, got 3"},
		{`{"devices":[{"baudrate":"fast"}]}`, `devices[0].baudrate: expected an integer, got "fast"`},
		{`{"devices":[{"baudrate":0}]}`, `devices[0].baudrate: expected a positive integer, got 0`},
		{`{"devices":[{"timeout":-1}]}`, `devices[0].timeout: expected seconds between 0 and 1000000, got -1`},
		{`{"devices":[{"rtscts":"yes"}]}`, `devices[0].rtscts: expected true or false, got "yes"`},
		{`{"devices":[{"delimiter":""}]}`, `devices[0].delimiter: expected a non-empty delimiter, text or hex such as "0x0d0a", got ""`},
		{`{"devices":[{"delimiter":"0xzz"}]}`, `devices[0].delimiter: expected a non-empty delimiter`},
		{`{"devices":[{"delimiter":"\n","frameLength":4}]}`, "devices[0]: expected one of delimiter, frameLength, frameGapMs, frameTimeoutMs, got 2 of them"},
		{`{"devices":[{"frameLength":0}]}`, "devices[0].frameLength: expected an integer between 1 and maxFrameSize (65536), got 0"},
		{`{"devices":[{"frameGapMs":0}]}`, "devices[0].frameGapMs: expected milliseconds between 1 and 3600000, got 0"},
		{`{"devices":[{"byteorder":"mixed"}]}`, `devices[0].byteorder: expected "big" or "little", got "mixed"`},
		{`{"devices":[{"reportStrategy":{"type":"SOMETIMES"}}]}`, `devices[0].reportStrategy.type: expected ON_RECEIVED, ON_CHANGE`},
		{`{"devices":[{"reportStrategy":{"type":"ON_REPORT_PERIOD"}}]}`, `devices[0].reportStrategy.reportPeriod: expected a period in milliseconds > 0 for ON_REPORT_PERIOD, got null`},
		{`{"reportStrategy":"x","devices":[]}`, `reportStrategy: expected an object {type, reportPeriod?, ttl?}, got "x"`},
		{`{"uplinkQueueSize":0,"devices":[]}`, `uplinkQueueSize: expected an integer ≥ 1, got 0`},
		{`{"logLevel":"LOUD","devices":[]}`, `logLevel: expected TRACE, DEBUG, INFO, WARNING, ERROR or CRITICAL, got "LOUD"`},
		{`{"devices":[{"attributeUpdates":[{"stringToDevice":"x"}]}]}`, "devices[0].attributeUpdates[0].attributeOnPlatform: expected an attribute name"},
		{`{"devices":[{"attributeUpdates":[{"attributeOnThingsBoard":"a"}]}]}`, "devices[0].attributeUpdates[0].stringToDevice: expected a string, got null"},
		{`{"devices":[{"serverSideRpc":[{"type":"int"}]}]}`, "devices[0].serverSideRpc[0].method: expected a method name, got null"},
		{`{"devices":[{"serverSideRpc":[{"method":"m","withResponse":"yes"}]}]}`, `devices[0].serverSideRpc[0].withResponse: expected true or false, got "yes"`},
		{`{"devices":[{"serverSideRpc":[{"method":"m","responseTimeoutSec":0}]}]}`, `devices[0].serverSideRpc[0].responseTimeoutSec: expected seconds > 0 and ≤ 3600, got 0`},
		{`{"devices":[{"serverSideRpc":[{"method":"m","responseFromByte":"a"}]}]}`, `devices[0].serverSideRpc[0].responseFromByte: expected an integer, got "a"`},
		{`{"devices":[{"name":"a"},{"deviceName":"a"}]}`, `devices[1].name: expected a device name not used by devices[0], got "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := New(nopGateway{}, factoryConfig([]byte(tt.raw)))
			if err == nil {
				t.Fatalf("no error for %s", tt.raw)
			}
			if !strings.HasPrefix(err.Error(), "/etc/iotgw/custom_serial.json: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n %v\nwant /etc/iotgw/custom_serial.json: ...%s", err, tt.want)
			}
		})
	}
}

func TestFactoryUnknownConverter(t *testing.T) {
	_, err := New(nopGateway{}, factoryConfig([]byte(`{"devices":[{"converter":"NoSuchConverter"}]}`)))
	if err == nil || !strings.Contains(err.Error(), `/etc/iotgw/custom_serial.json: devices[0].converter: uplink converter "NoSuchConverter" not found`) {
		t.Fatalf("error %v", err)
	}
	_, err = New(nopGateway{}, factoryConfig([]byte(`{"devices":[{"downlink_converter":"Nope"}]}`)))
	if err == nil || !strings.Contains(err.Error(), `devices[0].downlink_converter: downlink converter "Nope" not found`) {
		t.Fatalf("error %v", err)
	}
}

func TestUnknownKeysWarn(t *testing.T) {
	var logs bytes.Buffer
	_, err := parseConfig([]byte(`{"devices":[{"baudrat":9600,"telemetry":[{"key":"a","untilDelimeter":","}],
		"attributeUpdates":[{"attributeOnPlatform":"a","stringToDevice":"","x":1}],"serverSideRpc":[{"method":"m","responseTimeout":1}]}],"extra":1}`),
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"key=extra", "key=devices[0].baudrat", "key=devices[0].telemetry[0].untilDelimeter",
		"key=devices[0].attributeUpdates[0].x", "key=devices[0].serverSideRpc[0].responseTimeout"} {
		if !strings.Contains(logs.String(), k) {
			t.Errorf("no warning for %s:\n%s", k, logs.String())
		}
	}
}
