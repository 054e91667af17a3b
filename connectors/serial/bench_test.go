package serial

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// countGateway counts SendToStorage calls and signals when want is reached.
type countGateway struct {
	nopGateway
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (g *countGateway) SendToStorage(_, _ string, d *connector.ConvertedData) error {
	if g.n.Add(1) == g.want {
		close(g.done)
	}
	return nil
}

// BenchmarkPTYToStorage measures the whole uplink on a real pseudo-terminal: the
// device side writes the guide's frames as fast as the pty takes them, the connector
// reads, frames, converts and calls SendToStorage. One op is one frame.
func BenchmarkPTYToStorage(b *testing.B) {
	link := filepath.Join(b.TempDir(), "ttyBench")
	fp := newFakePortTB(b, link)
	gw := &countGateway{want: int64(b.N), done: make(chan struct{})}
	cfg := factoryConfig([]byte(`{"devices":[{"name":"SerialDevice1","port":"` + link + `",
		"telemetry":[{"type":"float","key":"humidity","untilDelimiter":"\r"}],
		"attributes":[{"key":"SerialNumber","type":"string","fromByte":4,"toByte":-1}]}]}`))
	cfg.Logger = slog.New(slog.DiscardHandler)
	c, err := newConnector(gw, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for deadline := time.Now().Add(5 * time.Second); !c.IsConnected(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("port not open")
		}
	}
	frame := []byte("48\r2430947595\n")
	block := bytes.Repeat(frame, 4096/len(frame))
	perBlock := len(block) / len(frame)
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	go func() {
		for left := b.N; left > 0; left -= perBlock {
			w := block
			if left < perBlock {
				w = block[:left*len(frame)]
			}
			if _, err := fp.master.Write(w); err != nil {
				return
			}
		}
	}()
	select {
	case <-gw.done:
	case <-time.After(60 * time.Second):
		b.Fatalf("only %d of %d frames arrived", gw.n.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
