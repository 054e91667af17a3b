package brokertest

import (
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Observer is a plain MQTT client standing in for the platform side on any broker
// (Debian's mosquitto in integration tests): it records what is published on the
// gateway API topics and sends downlink messages.
type Observer struct {
	c    paho.Client
	mu   sync.Mutex
	msgs []Msg
}

// Observe connects an observer to the broker at addr, subscribed to v1/gateway/#,
// and disconnects it at the end of the test.
func Observe(t testing.TB, addr string) *Observer {
	t.Helper()
	o := &Observer{}
	subscribed := make(chan error, 1)
	// Auto-reconnect and resubscribe: tests stop and restart the broker under it.
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("observer").SetOrderMatters(true).
		SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).
		SetOnConnectHandler(func(c paho.Client) {
			tok := c.Subscribe("v1/gateway/#", 1, func(_ paho.Client, m paho.Message) {
				o.mu.Lock()
				o.msgs = append(o.msgs, Msg{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...)})
				o.mu.Unlock()
			})
			tok.WaitTimeout(5 * time.Second)
			select {
			case subscribed <- tok.Error():
			default:
			}
		})
	o.c = paho.NewClient(opts)
	if tok := o.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("observer subscribe: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("observer subscribe: no answer in 5 s")
	}
	t.Cleanup(func() { o.c.Disconnect(100) })
	return o
}

// Messages returns the messages received on topic so far ("" for all).
func (o *Observer) Messages(topic string) []Msg {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Msg
	for _, m := range o.msgs {
		if topic == "" || m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// Publish sends a message at QoS 1 and waits for the broker's ack.
func (o *Observer) Publish(t testing.TB, topic, payload string) {
	t.Helper()
	if tok := o.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("observer publish: %v", tok.Error())
	}
}

// WaitFor waits until a message on topic satisfies ok and returns its payload.
func (o *Observer) WaitFor(t testing.TB, topic string, ok func(string) bool, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, m := range o.Messages(topic) {
			if ok(string(m.Payload)) {
				return string(m.Payload)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no matching message on %s within %v", topic, timeout)
	return ""
}
