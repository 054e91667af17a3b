package ops

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotgw/iotgw/buildinfo"
	"github.com/iotgw/iotgw/metrics"
)

// gatewayState is a Source whose health the test sets.
type gatewayState struct {
	mu sync.Mutex
	h  Health
}

func (g *gatewayState) Health() Health {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.h
}

func (g *gatewayState) set(h Health) {
	g.mu.Lock()
	g.h = h
	g.mu.Unlock()
}

// start runs a real server on 127.0.0.1:0 and stops it at the end of the test.
func start(t *testing.T, src Source, reg *metrics.Registry, log *slog.Logger) (*Server, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, "127.0.0.1:0", src, reg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.Wait(); err != nil {
			t.Errorf("Wait: %v", err)
		}
	})
	return s, "http://" + s.Addr().String()
}

func get(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestHealthz(t *testing.T) {
	old := buildinfo.Version
	buildinfo.Version = "v1.0.0-test"
	t.Cleanup(func() { buildinfo.Version = old })

	state := &gatewayState{}
	_, base := start(t, state, nil, nil)
	serial := ConnectorHealth{Name: "Serial A", Type: "serial", Connected: true}
	down := ConnectorHealth{Name: "Serial B", Type: "serial"}
	stopped := ConnectorHealth{Name: "Proc", Type: "custom", Stopped: true}
	tests := []struct {
		name string
		h    Health
		code int
		body string
	}{
		{"all up", Health{PlatformConnected: true, StorageDepth: 3, Connectors: []ConnectorHealth{serial}}, 200,
			`{"status":"ok","version":"v1.0.0-test","platformConnected":true,"storageDepth":3,"connectors":[{"name":"Serial A","type":"serial","connected":true,"stopped":false}]}`},
		{"no connectors", Health{PlatformConnected: true}, 200,
			`{"status":"ok","version":"v1.0.0-test","platformConnected":true,"storageDepth":0,"connectors":[]}`},
		{"platform down", Health{StorageDepth: 120, Connectors: []ConnectorHealth{serial}}, 503,
			`{"status":"unhealthy","version":"v1.0.0-test","platformConnected":false,"storageDepth":120,"connectors":[{"name":"Serial A","type":"serial","connected":true,"stopped":false}]}`},
		{"connector down", Health{PlatformConnected: true, Connectors: []ConnectorHealth{serial, down}}, 503,
			`{"status":"unhealthy","version":"v1.0.0-test","platformConnected":true,"storageDepth":0,"connectors":[{"name":"Serial A","type":"serial","connected":true,"stopped":false},{"name":"Serial B","type":"serial","connected":false,"stopped":false}]}`},
		{"connector stopped", Health{PlatformConnected: true, Connectors: []ConnectorHealth{stopped}}, 503,
			`{"status":"unhealthy","version":"v1.0.0-test","platformConnected":true,"storageDepth":0,"connectors":[{"name":"Proc","type":"custom","connected":false,"stopped":true}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state.set(tt.h)
			code, hdr, body := get(t, http.MethodGet, base+"/healthz")
			if code != tt.code || body != tt.body+"\n" {
				t.Errorf("got %d %s\nwant %d %s", code, body, tt.code, tt.body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := hdr.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			// HEAD gives the same status without a body, for the simplest probes.
			code, _, body = get(t, http.MethodHead, base+"/healthz")
			if code != tt.code || body != "" {
				t.Errorf("HEAD: %d %q", code, body)
			}
		})
	}
}

func TestMetricsEndpoint(t *testing.T) {
	reg := metrics.NewRegistry()
	c := metrics.NewCounter("iotgw_uplink_messages_total", "Messages received from devices.")
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	c.Add(5)
	_, base := start(t, &gatewayState{}, reg, nil)
	code, hdr, body := get(t, http.MethodGet, base+"/metrics")
	want := "# HELP iotgw_uplink_messages_total Messages received from devices.\n" +
		"# TYPE iotgw_uplink_messages_total counter\n" +
		"iotgw_uplink_messages_total 5\n"
	if code != 200 || body != want {
		t.Errorf("got %d %q, want 200 %q", code, body, want)
	}
	if ct := hdr.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	c.Inc()
	if _, _, body := get(t, http.MethodGet, base+"/metrics"); !strings.HasSuffix(body, "iotgw_uplink_messages_total 6\n") {
		t.Errorf("second scrape: %q", body)
	}
}

func TestRoutes(t *testing.T) {
	_, withReg := start(t, &gatewayState{}, metrics.NewRegistry(), nil)
	_, noReg := start(t, &gatewayState{}, nil, nil)
	tests := []struct {
		method, url string
		code        int
	}{
		{http.MethodPost, withReg + "/healthz", http.StatusMethodNotAllowed},
		{http.MethodDelete, withReg + "/metrics", http.StatusMethodNotAllowed},
		{http.MethodGet, withReg + "/", http.StatusNotFound},
		{http.MethodGet, withReg + "/healthz/x", http.StatusNotFound},
		{http.MethodGet, withReg + "/metrics", http.StatusOK}, // empty registry, empty body
		{http.MethodGet, noReg + "/metrics", http.StatusNotFound},
	}
	for _, tt := range tests {
		if code, _, _ := get(t, tt.method, tt.url); code != tt.code {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.url, code, tt.code)
		}
	}
}

// TestStopsWithContext: cancelling the context stops the server, Wait returns, and
// the port is closed.
func TestStopsWithContext(t *testing.T) {
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := Serve(ctx, "127.0.0.1:0", &gatewayState{}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, http.MethodGet, "http://"+addr.String()+"/healthz"); code != 503 {
		t.Fatalf("healthz = %d", code)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err != nil {
			break // closed
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still accepting 5 s after cancel")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Start: Wait returns once stopped, and the log says so.
	ctx2, cancel2 := context.WithCancel(context.Background())
	s, err := Start(ctx2, "127.0.0.1:0", &gatewayState{}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	cancel2()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return")
	}
	if out := logBuf.String(); !strings.Contains(out, "ops server listening") || !strings.Contains(out, "ops server stopped") {
		t.Errorf("log:\n%s", out)
	}
	if strings.Contains(logBuf.String(), "non-loopback") {
		t.Error("warned about a loopback address")
	}
}

func TestListenErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, addr := range []string{ln.Addr().String(), "127.0.0.1:notaport", "127.0.0.1:99999"} {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := Serve(ctx, addr, &gatewayState{}, nil, nil)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "ops: listen on "+addr) {
			t.Errorf("Serve(%s) = %v", addr, err)
		}
	}
}

// TestLoopback checks the address test behind the non-loopback warning without
// listening on a non-loopback address.
func TestLoopback(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9000}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 1, 2, 3)}, true},
		{&net.TCPAddr{IP: net.IPv6loopback}, true},
		{&net.TCPAddr{IP: net.IPv4zero}, false}, // "0.0.0.0:9000" or ":9000"
		{&net.TCPAddr{IP: net.IPv6unspecified}, false},
		{&net.TCPAddr{IP: net.IPv4(192, 168, 1, 10)}, false},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, false},
	}
	for _, tt := range tests {
		if got := loopback(tt.addr); got != tt.want {
			t.Errorf("loopback(%v) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server goroutines and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
