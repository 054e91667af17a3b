package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/brokertest"
)

// TestMosquitto runs the gateway against Debian's mosquitto: exact telemetry on the
// wire, an RPC round trip (the gateway ignores its own reply echoed back by the plain
// broker), and a broker restart mid-stream with every record delivered.
func TestMosquitto(t *testing.T) {
	m := brokertest.StartMosquitto(t)
	obs := brokertest.Observe(t, m.Addr)
	tc, _ := setupAt(t, m.Host(), m.Port(), "")

	tc.send(t, "M1", 1700000000001, "humidity", 48.0)
	got := obs.WaitFor(t, "v1/gateway/telemetry", func(string) bool { return true }, 10*time.Second)
	if want := `{"M1":[{"ts":1700000000001,"values":{"humidity":48}}]}`; got != want {
		t.Fatalf("telemetry\n got %s\nwant %s", got, want)
	}

	obs.Publish(t, "v1/gateway/rpc", `{"device":"M1","data":{"id":42,"method":"getValue","params":{}}}`)
	reply := obs.WaitFor(t, "v1/gateway/rpc", func(p string) bool { return strings.HasPrefix(p, `{"device":"M1","id":42,`) }, 10*time.Second)
	if want := `{"device":"M1","id":42,"data":{"result":"getValue-done"}}`; reply != want {
		t.Fatalf("rpc reply\n got %s\nwant %s", reply, want)
	}
	time.Sleep(300 * time.Millisecond)
	tc.mu.Lock()
	calls := len(tc.rpcs)
	tc.mu.Unlock()
	if calls != 1 {
		t.Fatalf("the connector saw %d RPCs, want 1 (echoed replies must be ignored)", calls)
	}

	// Outage: the broker is killed and restarted while records are produced.
	const n = 2000
	for i := range n {
		if i == n/2 {
			m.Stop()
			go func() { time.Sleep(2 * time.Second); m.Start() }()
		}
		tc.send(t, "M2", int64(i+1), "seq", i)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var seqs []int64
		for _, msg := range obs.Messages("v1/gateway/telemetry") {
			var p map[string][]struct {
				TS int64 `json:"ts"`
			}
			if json.Unmarshal(msg.Payload, &p) == nil {
				for _, e := range p["M2"] {
					seqs = append(seqs, e.TS)
				}
			}
		}
		if d := distinct(seqs); d == n {
			assertFirstSeenInOrder(t, seqs)
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("after the restart %d of %d records arrived", d, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
