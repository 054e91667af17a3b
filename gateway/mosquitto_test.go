package gateway_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotgw/iotgw/internal/brokertest"
)

// observer is a plain MQTT client standing in for the platform side on an external
// broker: it records what the gateway publishes and sends downlink messages.
type observer struct {
	c    paho.Client
	mu   sync.Mutex
	msgs []brokertest.Msg
}

func newObserver(t *testing.T, addr string) *observer {
	t.Helper()
	o := &observer{}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("observer-" + t.Name()).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).SetOrderMatters(true)
	opts.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe("v1/gateway/#", 1, func(_ paho.Client, m paho.Message) {
			o.mu.Lock()
			o.msgs = append(o.msgs, brokertest.Msg{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...)})
			o.mu.Unlock()
		})
	})
	o.c = paho.NewClient(opts)
	if tok := o.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	t.Cleanup(func() { o.c.Disconnect(100) })
	time.Sleep(100 * time.Millisecond) // subscription in place
	return o
}

func (o *observer) publish(t *testing.T, topic, payload string) {
	t.Helper()
	if tok := o.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("observer publish: %v", tok.Error())
	}
}

func (o *observer) waitFor(t *testing.T, topic string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		o.mu.Lock()
		for _, m := range o.msgs {
			if m.Topic == topic && ok(string(m.Payload)) {
				o.mu.Unlock()
				return string(m.Payload)
			}
		}
		o.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no message on %s", topic)
	return ""
}

// TestMosquitto runs the gateway against Debian's mosquitto: exact telemetry on the
// wire, an RPC round trip (the gateway ignores its own reply echoed back by the plain
// broker), and a broker restart mid-stream with every record delivered.
func TestMosquitto(t *testing.T) {
	m := brokertest.StartMosquitto(t)
	obs := newObserver(t, m.Addr)
	tc, _ := setupAt(t, m.Host(), m.Port(), "")

	tc.send(t, "M1", 1700000000001, "humidity", 48.0)
	got := obs.waitFor(t, "v1/gateway/telemetry", func(string) bool { return true })
	if want := `{"M1":[{"ts":1700000000001,"values":{"humidity":48}}]}`; got != want {
		t.Fatalf("telemetry\n got %s\nwant %s", got, want)
	}

	obs.publish(t, "v1/gateway/rpc", `{"device":"M1","data":{"id":42,"method":"getValue","params":{}}}`)
	reply := obs.waitFor(t, "v1/gateway/rpc", func(p string) bool { return strings.HasPrefix(p, `{"device":"M1","id":42,`) })
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
		obs.mu.Lock()
		for _, msg := range obs.msgs {
			if msg.Topic != "v1/gateway/telemetry" {
				continue
			}
			var p map[string][]struct {
				TS int64 `json:"ts"`
			}
			if json.Unmarshal(msg.Payload, &p) == nil {
				for _, e := range p["M2"] {
					seqs = append(seqs, e.TS)
				}
			}
		}
		obs.mu.Unlock()
		if d := distinct(seqs); d == n {
			assertFirstSeenInOrder(t, seqs)
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("after the restart %d of %d records arrived", d, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
