package extensions

import (
	"encoding/binary"
	"log/slog"
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
	benchUplink(b, u)
}

// BenchmarkUplinkGo is the same decoding in Go.
func BenchmarkUplinkGo(b *testing.B) { benchUplink(b, goUplink{}) }

func benchUplink(b *testing.B, u connector.UplinkConverter) {
	b.ReportAllocs()
	for b.Loop() {
		d, err := u.Convert(benchFrame)
		if err != nil || len(d.Telemetry) != 1 {
			b.Fatal(d, err)
		}
	}
}
