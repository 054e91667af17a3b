package gateway_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/iotgw/iotgw/config"
	"github.com/iotgw/iotgw/connector"
	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/storage"
)

// newIdleGateway makes a gateway that is not running, over memory storage, with
// the given gateway-level report strategy (the rest as tb_gateway.json defaults).
func newIdleGateway(tb testing.TB, strategy string) *gateway.Gateway {
	tb.Helper()
	cfg := &config.Gateway{}
	cfg.Thingsboard.Host, cfg.Thingsboard.Port, cfg.Thingsboard.QoS = "127.0.0.1", 1, 1
	cfg.Thingsboard.Security.Type, cfg.Thingsboard.Security.AccessToken = "accessToken", "T"
	cfg.Thingsboard.ReportStrategy = connector.ReportStrategy{Type: strategy}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, err := gateway.New(cfg, gateway.Options{Logger: log, Storage: storage.NewMemory(storage.MemoryConfig{MaxRecords: 1 << 16}, log)})
	if err != nil {
		tb.Fatal(err)
	}
	return gw
}

func frame(i int) *connector.ConvertedData {
	d := &connector.ConvertedData{DeviceName: "SerialDevice1", DeviceType: "default"}
	d.AddTelemetry(int64(1700000000000+i), connector.Datapoint{Key: "temperature", Value: connector.Float(21.5)},
		connector.Datapoint{Key: "humidity", Value: connector.Int(int64(i))})
	return d
}

// TestOnReceivedAllocations: with ON_RECEIVED, SendToStorage allocates only the
// record handed to storage, the variadic slice of Storage.Put and what memory
// storage allocates itself: filtering, strategies and the registry add nothing.
func TestOnReceivedAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	gw := newIdleGateway(t, connector.OnReceived)
	d := frame(1)
	must(t, gw.SendToStorage("c", "", d))
	if n := testing.AllocsPerRun(1000, func() { _ = gw.SendToStorage("c", "", d) }); n > 3 {
		t.Fatalf("%.1f allocations per SendToStorage, want at most 3", n)
	}
}

func BenchmarkSendToStorage(b *testing.B) {
	// ON_CHANGE with a changing value: every datapoint is compared and cached.
	for _, s := range []string{connector.OnReceived, connector.OnChange} {
		b.Run(s, func(b *testing.B) {
			gw := newIdleGateway(b, s)
			frames := make([]*connector.ConvertedData, 1024)
			for i := range frames {
				frames[i] = frame(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := gw.SendToStorage("c", "", frames[i%len(frames)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
