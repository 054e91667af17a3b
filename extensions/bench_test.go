package extensions

import (
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/iotgw/iotgw/connector"
)

type slogLogger = slog.Logger

// goUplink is the example's frame format decoded in Go: the floor a converter costs.
type goUplink struct{}

func (goUplink) Convert(b []byte) (*connector.ConvertedData, error) {
	d := &connector.ConvertedData{DeviceName: "BinarySensor1", DeviceType: "thermometer"}
	d.AddTelemetry(0,
		connector.Datapoint{Key: "temperature", Value: connector.Float(float64(int16(binary.BigEndian.Uint16(b))) / 10)},
		connector.Datapoint{Key: "battery", Value: connector.Int(int64(b[2]))})
	return d, nil
}

var benchFrame = []byte{0x00, 0xeb, 0x5a, '\r', '\n'}

// BenchmarkUplinkStarlark is the example BinaryUplink.star per frame.
func BenchmarkUplinkStarlark(b *testing.B) {
	u, err := New("../examples/extensions", nil).Converters(nil, "serial").Uplink("BinaryUplink", []byte(exampleDevice))
	if err != nil {
		b.Fatal(err)
	}
	benchUplink(b, u, benchFrame)
}

// BenchmarkUplinkGo is the same decoding in Go.
func BenchmarkUplinkGo(b *testing.B) { benchUplink(b, goUplink{}, benchFrame) }

func benchUplink(b *testing.B, u connector.UplinkConverter, frame []byte) {
	b.ReportAllocs()
	for b.Loop() {
		d, err := u.Convert(frame)
		if err != nil || len(d.Telemetry) != 1 {
			b.Fatal(d, err)
		}
	}
}

// The guide's text frame and device, for the built-in serial converter and the same
// parsing written in Starlark.
var (
	guideFrame  = []byte("48\r2430947595\n")
	guideDevice = []byte(`{"name": "SerialDevice1", "type": "default", "port": "/dev/ttyUSB0",
		"telemetry": [{"type": "float", "key": "humidity", "untilDelimiter": "\r"}],
		"attributes": [{"key": "SerialNumber", "type": "string", "fromByte": 4, "toByte": -1}]}`)
	guideScript = `def convert(config, data):
    s = str(data)
    return {"telemetry": {"humidity": float(s[:s.find("\r")])},
            "attributes": {"SerialNumber": s[4:-1]}}
`
)

// BenchmarkUplinkSerialBuiltinGuide is the built-in SerialUplinkConverter on the
// guide's frame.
func BenchmarkUplinkSerialBuiltinGuide(b *testing.B) {
	f, ok := connector.LookupUplink("SerialUplinkConverter")
	if !ok {
		b.Skip("serial converter not registered")
	}
	u, err := f(guideDevice, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	benchUplink(b, u, guideFrame)
}

// BenchmarkUplinkStarlarkGuide is the guide's parsing written as a script.
func BenchmarkUplinkStarlarkGuide(b *testing.B) {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "serial"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "serial", "Guide.star"), []byte(guideScript), 0o644); err != nil {
		b.Fatal(err)
	}
	u, err := New(dir, nil).Converters(nil, "serial").Uplink("Guide", guideDevice)
	if err != nil {
		b.Fatal(err)
	}
	d, err := u.Convert(guideFrame)
	if err != nil {
		b.Fatal(err)
	}
	if got := dataJSON(d); got != `SerialDevice1/default ts=0 humidity=48 attrs SerialNumber="430947595"` {
		b.Fatalf("guide script: %s", got)
	}
	benchUplink(b, u, guideFrame)
}
