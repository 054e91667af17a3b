// Package brokertest runs a real MQTT broker (the embedded mochi-mqtt server) for
// tests: on 127.0.0.1 with a free port, recording every message clients publish,
// and able to stop and restart on the same address to simulate an outage.
package brokertest

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Msg is one message a client published.
type Msg struct {
	Topic    string
	Payload  []byte
	Username string
}

// Broker is a running embedded broker.
type Broker struct {
	Addr string // host:port clients dial

	t       testing.TB
	token   string // accepted username; "" accepts any
	mu      sync.Mutex
	srv     *mqtt.Server
	msgs    []Msg
	changed chan struct{}
	users   []string // usernames of accepted connections
}

// Start starts a broker that accepts any username (or only token when not empty)
// and stops it at the end of the test.
func Start(t testing.TB, token string) *Broker {
	t.Helper()
	b := &Broker{t: t, token: token, changed: make(chan struct{})}
	b.start("127.0.0.1:0")
	t.Cleanup(b.Stop)
	return b
}

func (b *Broker) start(addr string) {
	b.t.Helper()
	srv := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.AddHook(&hook{b: b}, nil); err != nil {
		b.t.Fatal(err)
	}
	var l *listeners.TCP
	// Restarting on the same port can race the old socket's release: retry briefly.
	for i := 0; ; i++ {
		l = listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
		err := srv.AddListener(l)
		if err == nil {
			break
		}
		if i > 50 {
			b.t.Fatalf("broker listen %s: %v", addr, err)
		}
		srv = mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		_ = srv.AddHook(&hook{b: b}, nil)
		time.Sleep(50 * time.Millisecond)
	}
	if err := srv.Serve(); err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	b.srv = srv
	b.Addr = l.Address()
	b.mu.Unlock()
}

// Stop closes the broker and every connection (idempotent).
func (b *Broker) Stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart starts the broker again on the same address after Stop.
func (b *Broker) Restart() {
	b.t.Helper()
	b.start(b.Addr)
}

// Host and Port split Addr.
func (b *Broker) Host() string { h, _, _ := net.SplitHostPort(b.Addr); return h }

// Port returns the broker's port.
func (b *Broker) Port() int {
	_, p, _ := net.SplitHostPort(b.Addr)
	n := 0
	for _, c := range p {
		n = n*10 + int(c-'0')
	}
	return n
}

// Publish sends a message to subscribers from the broker's inline client.
func (b *Broker) Publish(topic string, payload []byte) {
	b.t.Helper()
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	if srv == nil {
		b.t.Fatal("broker stopped")
	}
	if err := srv.Publish(topic, payload, false, 1); err != nil {
		b.t.Fatal(err)
	}
}

// Messages returns the messages published on topic so far ("" for all).
func (b *Broker) Messages(topic string) []Msg {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Msg
	for _, m := range b.msgs {
		if topic == "" || m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// Users returns the usernames of the connections the broker accepted.
func (b *Broker) Users() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.users...)
}

// WaitFor waits until a message on topic satisfies ok (nil: any) and returns it.
func (b *Broker) WaitFor(topic string, ok func(Msg) bool, timeout time.Duration) (Msg, bool) {
	deadline := time.After(timeout)
	seen := 0
	for {
		b.mu.Lock()
		msgs := b.msgs[seen:]
		changed := b.changed
		for _, m := range msgs {
			if (topic == "" || m.Topic == topic) && (ok == nil || ok(m)) {
				b.mu.Unlock()
				return m, true
			}
		}
		seen += len(msgs)
		b.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			return Msg{}, false
		}
	}
}

// WaitCount waits until the messages on topic satisfy done (given all of them).
func (b *Broker) WaitCount(topic string, done func([]Msg) bool, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		b.mu.Lock()
		changed := b.changed
		b.mu.Unlock()
		if done(b.Messages(topic)) {
			return true
		}
		select {
		case <-changed:
		case <-deadline:
			return done(b.Messages(topic))
		}
	}
}

type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "brokertest" }

func (h *hook) Provides(x byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublished}, []byte{x})
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	if h.b.token != "" && user != h.b.token {
		return false
	}
	h.b.mu.Lock()
	h.b.users = append(h.b.users, user)
	h.b.mu.Unlock()
	return true
}

func (h *hook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (h *hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	m := Msg{Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), Username: string(cl.Properties.Username)}
	h.b.mu.Lock()
	h.b.msgs = append(h.b.msgs, m)
	close(h.b.changed)
	h.b.changed = make(chan struct{})
	h.b.mu.Unlock()
}
