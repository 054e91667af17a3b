package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/gatewaytest"

	"github.com/iotgw/iotgw/config"
	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/internal/brokertest"
	"github.com/iotgw/iotgw/storage"
)

// TestSessionRateLimits: the platform answers getSessionLimits with a datapoint
// limit of 10 per second; 30 datapoints sent as fast as a device can are spread
// over at least two seconds instead of exceeding it, and none is lost.
func TestSessionRateLimits(t *testing.T) {
	b := brokertest.Start(t, "")
	tc, _ := setup(t, b, "")
	req, ok := b.WaitFor("", func(m brokertest.Msg) bool {
		return strings.HasPrefix(m.Topic, "v1/devices/me/rpc/request/") && strings.Contains(string(m.Payload), "getSessionLimits")
	}, 5*time.Second)
	if !ok {
		t.Fatal("the gateway did not ask for its session limits")
	}
	id := strings.TrimPrefix(req.Topic, "v1/devices/me/rpc/request/")
	b.Publish("v1/devices/me/rpc/response/"+id, []byte(`{"maxPayloadSize":65536,"maxInflightMessages":100,
		"rateLimits":{"messages":"1000:1"},
		"gatewayRateLimits":{"messages":"1000:1","telemetryMessages":"1000:1","telemetryDataPoints":"10:1,1000:60"}}`))
	time.Sleep(200 * time.Millisecond) // the answer is applied

	start := time.Now()
	for i := range 30 {
		tc.send(t, "R1", int64(i+1), "v", i)
		time.Sleep(5 * time.Millisecond) // separate batches, as from a slow device
	}
	count := func(ms []brokertest.Msg) int {
		n := 0
		for _, m := range ms {
			n += strings.Count(string(m.Payload), `"v":`)
		}
		return n
	}
	if !b.WaitCount("v1/gateway/telemetry", func(ms []brokertest.Msg) bool { return count(ms) >= 30 }, 10*time.Second) {
		t.Fatalf("%d of 30 datapoints arrived", count(b.Messages("v1/gateway/telemetry")))
	}
	if took := time.Since(start); took < 1800*time.Millisecond {
		t.Fatalf("30 datapoints under a 10/s limit arrived in %v, want ≥ 2 s", took)
	}
}

// failingRead is a storage whose Read always fails, as a damaged disk would.
type failingRead struct {
	storage.Storage
	calls atomic.Int64
}

func (f *failingRead) Read(context.Context, int) (storage.Batch, error) {
	f.calls.Add(1)
	return storage.Batch{}, errors.New("read data/00000001.seg: input/output error")
}

// TestStorageReadErrorDoesNotSpin: a storage that cannot be read is retried with a
// pause, never in a tight loop.
func TestStorageReadErrorDoesNotSpin(t *testing.T) {
	b := brokertest.Start(t, "")
	dir := t.TempDir()
	main := fmt.Sprintf(`{"thingsboard":{"host":%q,"port":%d,"security":{"accessToken":"T"}},
"connectors":[{"name":"spin","type":"testconn","class":"TestConnector","configuration":"tc.json"}]}`, b.Host(), b.Port())
	must(t, os.WriteFile(filepath.Join(dir, "tb_gateway.json"), []byte(main), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "tc.json"), []byte(`{}`), 0o644))
	cfg, _, err := config.Load(filepath.Join(dir, "tb_gateway.json"))
	must(t, err)
	st := &failingRead{Storage: storage.NewMemory(storage.MemoryConfig{}, nil)}
	gw, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Storage: st})
	must(t, err)
	gatewaytest.Run(t, gw)
	time.Sleep(time.Second)
	n1 := st.calls.Load()
	time.Sleep(500 * time.Millisecond)
	if n := st.calls.Load() - n1; n > 10 || n == 0 {
		t.Fatalf("%d Read calls in 500 ms, want a few (retried with a pause)", n)
	}
}
