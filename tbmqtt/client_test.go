package tbmqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewValidation(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name    string
		o       Options
		wantErr []string // substrings of the error; none means valid
	}{
		{"access token", Options{Host: "h", Security: Security{AccessToken: "x"}}, nil},
		{"no host", Options{Security: Security{AccessToken: "x"}}, []string{"host is empty"}},
		{"no token", Options{Host: "h", Security: Security{Type: "accessToken"}}, []string{"needs an accessToken"}},
		{"unknown type", Options{Host: "h", Security: Security{Type: "magic"}}, []string{`"magic" is unknown`}},
		{"userpass without ids", Options{Host: "h", Security: Security{Type: "usernamePassword", Password: "p"}}, []string{"clientId or a username"}},
		{"userpass", Options{Host: "h", Security: Security{Type: "usernamePassword", Username: "u"}}, nil},
		{"private key without files", Options{Host: "h", Security: Security{Type: "tlsPrivateKey"}}, []string{"needs cert and privateKey"}},
		{"ca missing names file", Options{Host: "h", Security: Security{Type: "tlsAccessToken", AccessToken: "x", CACert: missing}}, []string{"caCert", missing}},
		{"ca garbage names file", Options{Host: "h", Security: Security{Type: "tlsAccessToken", AccessToken: "x", CACert: garbage}}, []string{"caCert " + garbage, "no PEM"}},
		{"cert missing names file", Options{Host: "h", Security: Security{Type: "tlsPrivateKey", Cert: missing, PrivateKey: garbage}}, []string{"cert:", missing}},
		{"key garbage names files", Options{Host: "h", Security: Security{Type: "tlsPrivateKey", Cert: garbage, PrivateKey: garbage}}, []string{"privateKey " + garbage}},
		{"bad port", Options{Host: "h", Port: 70000, Security: Security{AccessToken: "x"}}, []string{"port 70000"}},
		{"backoff order", Options{Host: "h", MinBackoff: time.Minute, MaxBackoff: time.Second, Security: Security{AccessToken: "x"}}, []string{"maximum backoff"}},
		{"negative timeout", Options{Host: "h", WriteTimeout: -1, Security: Security{AccessToken: "x"}}, []string{"write timeout"}},
		{"inflight", Options{Host: "h", MaxInflight: 70000, Security: Security{AccessToken: "x"}}, []string{"max in-flight"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.o)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want error with %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name     string
		o        Options
		wantPort int
		wantTLS  bool
	}{
		{"plain", Options{Host: "h", Security: Security{AccessToken: "x"}}, 1883, false},
		{"tls flag", Options{Host: "h", TLS: true, Security: Security{AccessToken: "x"}}, 8883, true},
		{"tls type", Options{Host: "h", Security: Security{Type: SecurityTLSAccessToken, AccessToken: "x"}}, 8883, true},
		{"port 8883", Options{Host: "h", Port: 8883, Security: Security{AccessToken: "x"}}, 8883, true},
		{"tls on other port", Options{Host: "h", Port: 1884, TLS: true, Security: Security{AccessToken: "x"}}, 1884, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.o)
			if c.s.Port != tt.wantPort || (c.s.tls != nil) != tt.wantTLS {
				t.Errorf("port %d tls %v, want %d %v", c.s.Port, c.s.tls != nil, tt.wantPort, tt.wantTLS)
			}
			if c.s.KeepAlive != DefaultKeepAlive || c.s.WriteTimeout != DefaultWriteTimeout ||
				c.s.ConnectTimeout != DefaultConnectTimeout || c.s.MinBackoff != DefaultMinBackoff ||
				c.s.MaxBackoff != DefaultMaxBackoff || c.s.MaxInflight != DefaultMaxInflight {
				t.Errorf("defaults not applied: %+v", c.s.Options)
			}
			if !strings.HasPrefix(c.ClientID(), "iotgw-") || len(c.ClientID()) != len("iotgw-")+16 {
				t.Errorf("client id %q, want iotgw-<16 hex>", c.ClientID())
			}
			if again := newClient(t, tt.o); again.ClientID() != c.ClientID() {
				t.Errorf("client ids %q and %q differ within one process", c.ClientID(), again.ClientID())
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(time.Second, 60*time.Second)
	wantCeil := []time.Duration{2, 4, 8, 16, 32, 60, 60, 60}
	for i, c := range wantCeil {
		for range 200 { // many draws per step: each must be inside [min, ceiling]
			saved := b.ceil
			d := b.next()
			if d < time.Second || d > c*time.Second {
				t.Fatalf("step %d: delay %v outside [1s, %v]", i, d, c*time.Second)
			}
			b.ceil = saved
		}
		b.next()
	}
	b.reset()
	if d := b.next(); d < time.Second || d > 2*time.Second {
		t.Errorf("after reset: delay %v outside [1s, 2s]", d)
	}
	same := newBackoff(time.Second, time.Second)
	if d := same.next(); d != time.Second {
		t.Errorf("min == max: delay %v, want 1s", d)
	}
}

func TestAccessTokenConnect(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder("tok-123"), nil)
	c := newClient(t, testOptions(b, "tok-123"))
	if c.Connected() {
		t.Fatal("connected before Run")
	}
	runClient(t, c)
	waitConnected(t, c, 5*time.Second)
	conns := b.hook.connsSnapshot()
	if len(conns) != 1 {
		t.Fatalf("broker saw %d CONNECTs, want 1", len(conns))
	}
	if got := conns[0]; got.username != "tok-123" || got.passwd != "" || got.clientID != c.ClientID() || !got.accepted {
		t.Errorf("CONNECT %+v, want username tok-123, no password, client id %s", got, c.ClientID())
	}
	if !c.Connected() || c.Reconnects() != 0 {
		t.Errorf("Connected %v Reconnects %d, want true 0", c.Connected(), c.Reconnects())
	}
}

func TestUsernamePasswordConnect(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder(""), nil)
	o := testOptions(b, "")
	o.Security = Security{Type: SecurityUsernamePassword, ClientID: "gw-7", Username: "user", Password: "secret"}
	c := newClient(t, o)
	runClient(t, c)
	waitConnected(t, c, 5*time.Second)
	got := b.hook.connsSnapshot()[0]
	if got.clientID != "gw-7" || got.username != "user" || got.passwd != "secret" {
		t.Errorf("CONNECT %+v, want gw-7/user/secret", got)
	}
}

func TestWrongTokenRetriedWithBackoff(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder("good"), nil)
	var logs logBuffer
	o := testOptions(b, "bad")
	o.MinBackoff, o.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	o.Logger = logs.logger()
	c := newClient(t, o)
	stop := runClient(t, c)
	b.hook.waitFor(t, 5*time.Second, "5 refused attempts", func(conns []connInfo, _ []message) bool { return len(conns) >= 5 })
	stop()
	conns := b.hook.connsSnapshot()
	for i, ci := range conns {
		if ci.accepted || ci.username != "bad" {
			t.Errorf("attempt %d: %+v, want refused with username bad", i, ci)
		}
		if i > 0 {
			if gap := ci.at.Sub(conns[i-1].at); gap < 45*time.Millisecond {
				t.Errorf("attempt %d came %v after the previous one, want >= MinBackoff 50ms", i, gap)
			}
		}
	}
	if c.Connected() || c.Reconnects() != 0 {
		t.Errorf("Connected %v Reconnects %d after refusals", c.Connected(), c.Reconnects())
	}
	// One log line per failed attempt, each naming the next delay.
	lines := strings.Count(logs.String(), "tbmqtt: connect failed")
	if lines < len(conns)-1 || lines > len(conns) {
		t.Errorf("%d 'connect failed' log lines for %d attempts", lines, len(conns))
	}
	if !strings.Contains(logs.String(), "retry_in=") || !strings.Contains(logs.String(), "not Authorized") {
		t.Errorf("log lacks the retry delay or the reason:\n%s", logs.String())
	}
}

func TestPublishNotConnected(t *testing.T) {
	c := newClient(t, Options{Host: "127.0.0.1", Port: 1, Security: Security{AccessToken: "x"}})
	p := c.Publish(TopicTelemetry, 1, []byte("{}"))
	select {
	case <-p.Done():
	default:
		t.Fatal("Pending of a publish while disconnected is not done at once")
	}
	if err := p.Wait(context.Background()); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Wait = %v, want ErrNotConnected", err)
	}
	for _, tc := range []struct {
		topic string
		qos   byte
	}{{"", 1}, {TopicTelemetry, 2}} {
		if err := c.Publish(tc.topic, tc.qos, nil).Wait(context.Background()); err == nil {
			t.Errorf("Publish(%q, %d) succeeded", tc.topic, tc.qos)
		}
	}
}

func TestPublishExactBytes(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder("t"), nil)
	c := newClient(t, testOptions(b, "t"))
	runClient(t, c)
	waitConnected(t, c, 5*time.Second)
	tests := []struct {
		topic   string
		qos     byte
		payload []byte
	}{
		{TopicTelemetry, 1, []byte(`{"D":[{"ts":1700000000000,"values":{"k":1.5}}]}`)},
		{TopicAttributes, 0, []byte(`{"D":{"fw":"1.0"}}`)},
		{TopicDeviceTelemetry, 1, []byte{0, 1, 2, 0xfe, 0xff, '\n'}},
		{TopicConnect, 1, ConnectPayload("Sensor A", "thermo")},
		{TopicRPC, 1, []byte{}},
	}
	for i, tt := range tests {
		if err := c.Publish(tt.topic, tt.qos, tt.payload).Wait(context.Background()); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// QoS 0 completes when written, so wait for the broker to have everything.
	b.hook.waitFor(t, 5*time.Second, "all publishes", func(_ []connInfo, p []message) bool { return len(p) == len(tests) })
	for i, got := range b.hook.pubsSnapshot() {
		tt := tests[i]
		if got.topic != tt.topic || got.qos != tt.qos || !bytes.Equal(got.payload, tt.payload) || got.client != c.ClientID() {
			t.Errorf("message %d: got %s q%d %q from %s, want %s q%d %q", i, got.topic, got.qos, got.payload, got.client, tt.topic, tt.qos, tt.payload)
		}
	}
}

func TestPublishOrder10000(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder("t"), nil)
	c := newClient(t, testOptions(b, "t"))
	runClient(t, c)
	waitConnected(t, c, 5*time.Second)
	const n = 10000
	pend := make([]*Pending, n)
	for i := range pend {
		pend[i] = c.Publish(TopicTelemetry, 1, fmt.Appendf(nil, `{"seq":%d}`, i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, p := range pend {
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	pubs := b.hook.pubsSnapshot()
	if len(pubs) != n {
		t.Fatalf("broker got %d messages, want %d", len(pubs), n)
	}
	for i, m := range pubs {
		if want := fmt.Sprintf(`{"seq":%d}`, i); string(m.payload) != want {
			t.Fatalf("message %d is %s, want %s", i, m.payload, want)
		}
	}
}

func TestPublishConcurrentPerCallerOrder(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder("t"), nil)
	o := testOptions(b, "t")
	o.MaxInflight = 16 // make publishers wait for room
	c := newClient(t, o)
	runClient(t, c)
	waitConnected(t, c, 5*time.Second)
	const writers, each = 4, 500
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			var last *Pending
			for i := range each {
				last = c.Publish(TopicTelemetry, 1, fmt.Appendf(nil, "%d/%d", w, i))
			}
			// Every earlier Pending is settled before a later one: order of settling
			// follows publish order.
			errs <- last.Wait(context.Background())
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b.hook.waitFor(t, 5*time.Second, "all messages", func(_ []connInfo, p []message) bool { return len(p) == writers*each })
	next := make([]int, writers)
	for _, m := range b.hook.pubsSnapshot() {
		var w, i int
		if _, err := fmt.Sscanf(string(m.payload), "%d/%d", &w, &i); err != nil {
			t.Fatal(err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got message %d, want %d", w, i, next[w])
		}
		next[w]++
	}
}

func TestSubscribeRestoredAfterBrokerRestart(t *testing.T) {
	hook := newRecorder("t")
	b1 := startBroker(t, "127.0.0.1:0", hook, nil)
	c := newClient(t, testOptions(b1, "t"))

	type msg struct{ topic, payload string }
	got := make(chan msg, 10)
	c.Subscribe(TopicRPC, 1, func(topic string, payload []byte) { got <- msg{topic, string(payload)} })
	c.Subscribe(TopicDeviceRPCRequest+"+", 1, func(topic string, payload []byte) { got <- msg{topic, string(payload)} })

	// OnConnect must find the subscriptions made already; record what it saw.
	var cur atomic.Pointer[broker]
	cur.Store(b1)
	type seen struct {
		connected  bool
		subscribed int
	}
	onConnect := make(chan seen, 10)
	c.OnConnect(func(ctx context.Context) {
		b := cur.Load()
		n := len(b.srv.Topics.Subscribers(TopicRPC).Subscriptions) + len(b.srv.Topics.Subscribers(TopicDeviceRPCRequest+"7").Subscriptions)
		onConnect <- seen{c.Connected(), n}
	})
	runClient(t, c)
	waitConnected(t, c, 5*time.Second)

	expect := func(want seen) {
		t.Helper()
		select {
		case s := <-onConnect:
			if s != want {
				t.Errorf("OnConnect saw %+v, want %+v", s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("OnConnect did not run")
		}
	}
	receive := func(b *broker, topic, payload string) {
		t.Helper()
		if err := b.srv.Publish(topic, []byte(payload), false, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m.topic != topic || m.payload != payload {
				t.Errorf("handler got %s %q, want %s %q", m.topic, m.payload, topic, payload)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("handler did not receive %s", topic)
		}
	}
	expect(seen{true, 2})
	receive(b1, TopicRPC, `{"device":"D","data":{"id":1,"method":"m","params":{}}}`)

	addr := b1.addr
	b1.stop()
	deadline := time.Now().Add(5 * time.Second)
	for c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("client still connected after the broker stopped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p := c.Publish(TopicTelemetry, 1, []byte("{}")); !errors.Is(p.Wait(context.Background()), ErrNotConnected) {
		t.Error("publish while the broker is down did not fail with ErrNotConnected")
	}

	b2 := startBroker(t, addr, hook, nil)
	cur.Store(b2)
	waitConnected(t, c, 5*time.Second)
	expect(seen{true, 2})
	if c.Reconnects() != 1 {
		t.Errorf("Reconnects = %d, want 1", c.Reconnects())
	}
	receive(b2, TopicRPC, `{"device":"D","data":{"id":2}}`)
	receive(b2, TopicDeviceRPCRequest+"42", `{"method":"gateway_ping","params":{}}`)

	// A subscription made while connected is made at once.
	c.Subscribe(TopicAttributes, 1, func(topic string, payload []byte) { got <- msg{topic, string(payload)} })
	receive(b2, TopicAttributes, `{"device":"D","data":{"k":1}}`)
}

func TestOnConnectContextEndsWithLink(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder("t"), nil)
	c := newClient(t, testOptions(b, "t"))
	started, ended := make(chan struct{}, 4), make(chan struct{}, 4)
	c.OnConnect(func(ctx context.Context) {
		started <- struct{}{}
		<-ctx.Done() // a long callback: must be told when the link goes
		ended <- struct{}{}
	})
	runClient(t, c)
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("OnConnect did not run")
	}
	b.dropClient(t, c.ClientID())
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("OnConnect context not cancelled when the link dropped")
	}
	b.hook.waitFor(t, 5*time.Second, "reconnect", func(conns []connInfo, _ []message) bool { return len(conns) >= 2 })
	waitConnected(t, c, 5*time.Second)
}

func TestLinkDropWithPublishesInFlight(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder("t"), nil)
	c := newClient(t, testOptions(b, "t"))
	runClient(t, c)
	waitConnected(t, c, 5*time.Second)

	const acked, total = 50, 200
	release := b.hook.holdFrom(acked) // the broker acks 50, then stops acking
	defer release()
	pend := make([]*Pending, total)
	for i := range pend {
		pend[i] = c.Publish(TopicTelemetry, 1, fmt.Appendf(nil, "%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pend[acked-1].Wait(ctx); err != nil {
		t.Fatalf("publish %d (acked): %v", acked-1, err)
	}
	b.dropClient(t, c.ClientID())
	release()

	for i, p := range pend {
		err := p.Wait(ctx) // none may hang
		switch {
		case i < acked && err != nil:
			t.Errorf("publish %d was acked but Wait = %v", i, err)
		case i >= acked && !errors.Is(err, ErrConnectionLost):
			t.Errorf("publish %d was not acked but Wait = %v, want ErrConnectionLost", i, err)
		}
	}

	// At least once: the gateway sends the failed ones again after the reconnect.
	waitConnected(t, c, 5*time.Second)
	for i := acked; i < total; i++ {
		pend[i] = c.Publish(TopicTelemetry, 1, fmt.Appendf(nil, "%d", i))
	}
	for i := acked; i < total; i++ {
		if err := pend[i].Wait(ctx); err != nil {
			t.Fatalf("resend %d: %v", i, err)
		}
	}
	seen := map[string]bool{}
	for _, m := range b.hook.pubsSnapshot() {
		seen[string(m.payload)] = true
	}
	for i := range total {
		if !seen[fmt.Sprint(i)] {
			t.Errorf("message %d never reached the broker", i)
		}
	}
}

func TestAckTimeoutClosesLink(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder("t"), nil)
	var logs logBuffer
	o := testOptions(b, "t")
	o.WriteTimeout = 300 * time.Millisecond
	o.Logger = logs.logger()
	c := newClient(t, o)
	runClient(t, c)
	waitConnected(t, c, 5*time.Second)

	release := b.hook.holdFrom(0) // the broker reads but never acks
	defer release()
	start := time.Now()
	pend := make([]*Pending, 5)
	for i := range pend {
		pend[i] = c.Publish(TopicTelemetry, 1, []byte("x"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, p := range pend {
		if err := p.Wait(ctx); !errors.Is(err, ErrConnectionLost) {
			t.Errorf("publish %d: Wait = %v, want ErrConnectionLost", i, err)
		}
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Errorf("unacked publishes failed after %v, want about the 300ms write timeout", el)
	}
	if !strings.Contains(logs.String(), "no acknowledgement") {
		t.Errorf("log does not say why the link was closed:\n%s", logs.String())
	}
	release()
	b.hook.waitFor(t, 5*time.Second, "reconnect", func(conns []connInfo, _ []message) bool { return len(conns) >= 2 })
	waitConnected(t, c, 5*time.Second)
	if err := c.Publish(TopicTelemetry, 1, []byte("after")).Wait(ctx); err != nil {
		t.Errorf("publish after reconnect: %v", err)
	}
}

func TestRunStopsEverything(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder("t"), nil)
	before := runtime.NumGoroutine()
	c := newClient(t, testOptions(b, "t"))
	handled := make(chan struct{}, 1)
	c.Subscribe(TopicRPC, 1, func(string, []byte) { handled <- struct{}{} })
	stop := runClient(t, c)
	waitConnected(t, c, 5*time.Second)
	if err := b.srv.Publish(TopicRPC, []byte("{}"), false, 1); err != nil {
		t.Fatal(err)
	}
	<-handled
	p := c.Publish(TopicTelemetry, 1, []byte("{}"))
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop()
	if c.Connected() {
		t.Error("connected after Run returned")
	}
	// Run said goodbye with a DISCONNECT packet, not by dropping the socket.
	b.hook.waitFor(t, 5*time.Second, "disconnect", func([]connInfo, []message) bool { return len(b.hook.discs) == 1 })
	if d := b.hook.disconnects(); d[0] != nil {
		t.Errorf("broker saw the client go with %v, want a clean DISCONNECT", d[0])
	}
	if err := c.Publish(TopicTelemetry, 1, nil).Wait(context.Background()); !errors.Is(err, ErrNotConnected) {
		t.Errorf("publish after Run: %v, want ErrNotConnected", err)
	}
	if err := c.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
	// paho's goroutines end shortly after Disconnect; allow them a moment.
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left after Run, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunStopsWhileBrokerDown(t *testing.T) {
	// Nothing listens here: Run keeps retrying and must still stop at once on cancel.
	b := startBroker(t, "127.0.0.1:0", newRecorder("t"), nil)
	b.stop()
	o := testOptions(b, "t")
	o.MinBackoff, o.MaxBackoff = time.Hour, time.Hour
	c := newClient(t, o)
	stop := runClient(t, c)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	stop()
	if el := time.Since(start); el > time.Second {
		t.Errorf("Run took %v to stop during backoff", el)
	}
}

func TestPublishWaitsForRoomInWindow(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", newRecorder("t"), nil)
	o := testOptions(b, "t")
	o.MaxInflight = 4
	c := newClient(t, o)
	runClient(t, c)
	waitConnected(t, c, 5*time.Second)

	release := b.hook.holdFrom(0) // no acks for now
	defer release()
	var returned atomic.Int32
	pend := make(chan *Pending, 6)
	go func() {
		for i := range 6 {
			pend <- c.Publish(TopicTelemetry, 1, fmt.Appendf(nil, "%d", i))
			returned.Add(1)
		}
		close(pend)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for returned.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the fifth must still be waiting
	if n := returned.Load(); n != 4 {
		t.Fatalf("%d Publish calls returned with no acks and MaxInflight 4, want 4", n)
	}
	release()
	i := 0
	for p := range pend {
		if err := p.Wait(context.Background()); err != nil {
			t.Errorf("publish %d: %v", i, err)
		}
		i++
	}
	if i != 6 {
		t.Errorf("%d publishes, want 6", i)
	}
}
