package tbmqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// connInfo is one CONNECT the broker saw.
type connInfo struct {
	at                         time.Time
	clientID, username, passwd string
	certCN                     string // common name of the TLS client certificate, if any
	accepted                   bool
}

// message is one PUBLISH a (non-inline) client sent to the broker.
type message struct {
	client  string
	topic   string
	qos     byte
	payload []byte
}

// recorder is a mochi hook: it checks username == token (when token is set),
// records every CONNECT and PUBLISH, and can withhold PUBACKs by holding the
// publishing client's read loop.
type recorder struct {
	mqtt.HookBase
	token string

	mu        sync.Mutex
	conns     []connInfo
	pubs      []message
	discs     []error       // OnDisconnect causes; nil after a clean DISCONNECT
	holdAfter int           // with hold set: publishes after this many are held
	hold      chan struct{} // closed to release held publishes
	changed   chan struct{} // closed and replaced on every record
}

func newRecorder(token string) *recorder {
	return &recorder{token: token, changed: make(chan struct{})}
}

func (h *recorder) ID() string { return "recorder" }

func (h *recorder) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnDisconnect}, []byte{b})
}

func (h *recorder) OnDisconnect(_ *mqtt.Client, err error, _ bool) {
	h.mu.Lock()
	h.discs = append(h.discs, err)
	h.notifyLocked()
	h.mu.Unlock()
}

func (h *recorder) disconnects() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.discs...)
}

func (h *recorder) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	ci := connInfo{
		at:       time.Now(),
		clientID: pk.Connect.ClientIdentifier,
		username: string(pk.Connect.Username),
		passwd:   string(pk.Connect.Password),
		accepted: h.token == "" || string(pk.Connect.Username) == h.token,
	}
	if tc, ok := cl.Net.Conn.(*tls.Conn); ok {
		if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
			ci.certCN = st.PeerCertificates[0].Subject.CommonName
		}
	}
	h.mu.Lock()
	h.conns = append(h.conns, ci)
	h.notifyLocked()
	h.mu.Unlock()
	return ci.accepted
}

func (h *recorder) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (h *recorder) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	h.mu.Lock()
	h.pubs = append(h.pubs, message{client: cl.ID, topic: pk.TopicName, qos: pk.FixedHeader.Qos, payload: bytes.Clone(pk.Payload)})
	h.notifyLocked()
	hold := h.hold
	held := hold != nil && len(h.pubs) > h.holdAfter
	h.mu.Unlock()
	if held {
		<-hold // no PUBACK until released
	}
	return pk, nil
}

func (h *recorder) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// holdFrom withholds the PUBACK of every publish after the first n recorded so far
// from now on; the returned func releases them (idempotent).
func (h *recorder) holdFrom(n int) (release func()) {
	ch := make(chan struct{})
	h.mu.Lock()
	h.hold, h.holdAfter = ch, len(h.pubs)+n
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.hold = nil
			h.mu.Unlock()
			close(ch)
		})
	}
}

func (h *recorder) connsSnapshot() []connInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]connInfo(nil), h.conns...)
}

func (h *recorder) pubsSnapshot() []message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]message(nil), h.pubs...)
}

// waitFor polls cond on every record until it holds or the timeout passes.
func (h *recorder) waitFor(t testing.TB, timeout time.Duration, what string, cond func(conns []connInfo, pubs []message) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ok := cond(h.conns, h.pubs)
		ch := h.changed
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// broker is an embedded mochi broker on a loopback TCP listener.
type broker struct {
	srv  *mqtt.Server
	addr string    // host:port it listens on
	hook *recorder // nil when started with another hook
	once sync.Once
}

// startBroker starts mochi on addr ("127.0.0.1:0" for a free port) with hook, and TLS
// when tlsCfg is set. It stops with the test.
func startBroker(t testing.TB, addr string, hook *recorder, tlsCfg *tls.Config) *broker {
	t.Helper()
	b := startServer(t, addr, hook, tlsCfg)
	b.hook = hook
	return b
}

// startServer starts mochi with any hook.
func startServer(t testing.TB, addr string, hook mqtt.Hook, tlsCfg *tls.Config) *broker {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(hook, nil); err != nil {
		t.Fatalf("add hook: %v", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t1", Address: addr, TLSConfig: tlsCfg})
	var err error
	for range 50 { // a restart on the same port may race the old socket's release
		if err = srv.AddListener(l); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	b := &broker{srv: srv, addr: l.Address()}
	t.Cleanup(b.stop)
	return b
}

func (b *broker) port() int {
	var p int
	_, _ = fmt.Sscanf(b.addr[strings.LastIndex(b.addr, ":")+1:], "%d", &p)
	return p
}

func (b *broker) stop() {
	b.once.Do(func() { _ = b.srv.Close() })
}

// dropClient closes the broker side of the client's connection.
func (b *broker) dropClient(t testing.TB, id string) {
	t.Helper()
	cl, ok := b.srv.Clients.Get(id)
	if !ok {
		t.Fatalf("broker has no client %q", id)
	}
	cl.Stop(errors.New("dropped by test"))
}

// runClient starts c.Run in a goroutine stopped and waited for at the end of the test.
func runClient(t testing.TB, c *Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return within 5 s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// testOptions are client options for b with short timeouts for tests.
func testOptions(b *broker, token string) Options {
	return Options{
		Host:           "127.0.0.1",
		Port:           b.port(),
		Security:       Security{Type: SecurityAccessToken, AccessToken: token},
		MinBackoff:     20 * time.Millisecond,
		MaxBackoff:     100 * time.Millisecond,
		ConnectTimeout: 2 * time.Second,
		WriteTimeout:   5 * time.Second,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

func newClient(t testing.TB, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func waitConnected(t testing.TB, c *Client, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatalf("not connected within %v: %v", timeout, err)
	}
}

// logBuffer is a concurrency-safe log sink for checking what the client logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
