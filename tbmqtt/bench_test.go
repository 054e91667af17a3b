package tbmqtt

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// countHook counts publishes without keeping them, so the benchmark measures the
// client and the broker, not the test's bookkeeping.
type countHook struct {
	mqtt.HookBase
	n atomic.Int64
}

func (h *countHook) ID() string { return "count" }
func (h *countHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish}, []byte{b})
}
func (h *countHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (h *countHook) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }
func (h *countHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.n.Add(1)
	return pk, nil
}

// BenchmarkPublishQoS1 pipelines QoS 1 publishes of 1 KiB to the embedded broker
// and waits for every PUBACK; msgs/s counts acknowledged messages per second.
func BenchmarkPublishQoS1(b *testing.B) {
	hook := &countHook{}
	br := startServer(b, "127.0.0.1:0", hook, nil)
	c := newClient(b, testOptions(br, "t"))
	runClient(b, c)
	waitConnected(b, c, 5*time.Second)
	payload := bytes.Repeat([]byte("x"), 1024)
	ctx := context.Background()
	// A ring of the latest Pendings: the oldest is waited for before its slot is
	// reused, so the pipeline stays full (Publish keeps MaxInflight in flight).
	ring := make([]*Pending, 2*DefaultMaxInflight)
	wait := func(p *Pending) {
		if p != nil {
			if err := p.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		wait(ring[i%len(ring)])
		ring[i%len(ring)] = c.Publish(TopicTelemetry, 1, payload)
	}
	for _, p := range ring {
		wait(p)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if got := hook.n.Load(); got < int64(b.N) {
		b.Fatalf("broker got %d messages, want %d", got, b.N)
	}
}
