package tcpline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// recGateway is a connector.Gateway that records what the connector hands it. The
// gateway core itself is driven end to end by ../example_test.go (real binary, real
// broker); here the connector's own behaviour is pinned down, fast.
type recGateway struct {
	mu      sync.Mutex
	events  []string // "add D T", "data ...", "del D", "reply D ID JSON"
	changed chan struct{}
}

func newRecGateway() *recGateway { return &recGateway{changed: make(chan struct{})} }

func (g *recGateway) add(e string) {
	g.mu.Lock()
	g.events = append(g.events, e)
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

func (g *recGateway) SendToStorage(_, _ string, d *connector.ConvertedData) error {
	g.add("data " + render(d))
	return nil
}
func (g *recGateway) AddDevice(name, typ string, _ connector.Connector) {
	g.add("add " + name + " " + typ)
}
func (g *recGateway) DelDevice(name string) { g.add("del " + name) }
func (g *recGateway) SendRPCReply(device string, id int, content any) error {
	b, err := json.Marshal(content)
	if err != nil {
		return err
	}
	g.add(fmt.Sprintf("reply %s %d %s", device, id, b))
	return nil
}

// wait returns the first event with the given prefix.
func (g *recGateway) wait(t *testing.T, prefix string) string {
	t.Helper()
	return g.waitFor(t, prefix, func(e string) bool { return strings.HasPrefix(e, prefix) })
}

// waitFor returns the first event that satisfies ok.
func (g *recGateway) waitFor(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		g.mu.Lock()
		ch := g.changed
		for _, e := range g.events {
			if ok(e) {
				g.mu.Unlock()
				return e
			}
		}
		g.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			g.mu.Lock()
			defer g.mu.Unlock()
			t.Fatalf("no event %q within 5 s; events: %q", what, g.events)
		}
	}
}

// fakeDevice is a TCP line device: it accepts connections, and lets the test read
// the lines the gateway wrote and write lines back.
type fakeDevice struct {
	ln    net.Listener
	conns chan net.Conn
}

func startDevice(t *testing.T) *fakeDevice {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDevice{ln: ln, conns: make(chan net.Conn, 8)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(d.conns)
		for c := range d.conns {
			c.Close()
		}
	})
	return d
}

func (d *fakeDevice) port() int { return d.ln.Addr().(*net.TCPAddr).Port }

func (d *fakeDevice) accept(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	select {
	case c := <-d.conns:
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	case <-time.After(5 * time.Second):
		t.Fatal("the connector did not connect within 5 s")
	}
	return nil, nil
}

func readLine(t *testing.T, c net.Conn, r *bufio.Reader) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("device read: %v (got %q)", err, s)
	}
	return s
}

func writeLine(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func deviceFile(port int, extra string) string {
	return fmt.Sprintf(`{"name":"TCP","devices":[{"name":"Boiler1","type":"boiler","port":%d,"tsKey":"ts",
 "telemetry":{"temp":"float","burner":"bool"},"attributes":{"fw":"string"},
 "attributeTemplate":"set ${attr}=${value}\n",
 "attributeUpdates":[{"attributeOnPlatform":"mode","stringToDevice":"mode ${mode}\n"}],
 "serverSideRpc":[
  {"method":"getStatus","withResponse":true,"responsePrefix":"status ","responseTimeoutSec":0.3},
  {"method":"resetCounters","command":"reset"}]%s}]}`, port, extra)
}

func newTestConnector(t *testing.T, gw connector.Gateway, file string, log *slog.Logger) *TCPLineConnector {
	t.Helper()
	if log == nil {
		log = quiet
	}
	c, err := New(gw, connector.Config{Name: "TCP", Type: Type, Class: Class, ID: "id-1", Raw: json.RawMessage(file), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return c.(*TCPLineConnector)
}

func TestConnectorRoundTrip(t *testing.T) {
	dev := startDevice(t)
	gw := newRecGateway()
	c := newTestConnector(t, gw, deviceFile(dev.port(), ""), nil)
	if !c.IsStopped() || c.IsConnected() {
		t.Fatal("a connector not opened yet must be stopped and not connected")
	}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, r := dev.accept(t)

	// Announced on connect, before any data.
	if e := gw.wait(t, "add "); e != "add Boiler1 boiler" {
		t.Fatalf("got %q", e)
	}
	if !c.IsConnected() || c.IsStopped() {
		t.Fatal("connected and running expected")
	}

	// Uplink: the line's own ts, and the read time for a line without one.
	before := time.Now().UnixMilli()
	writeLine(t, conn, "ts=1700000000000;temp=21.5;burner=on;fw=1.2.3\r\n")
	writeLine(t, conn, "temp=22\n")
	if e := gw.wait(t, "data Boiler1/boiler tel@1700000000000"); e != `data Boiler1/boiler tel@1700000000000{temp:21.5,burner:true} attr{fw:"1.2.3"}` {
		t.Fatalf("got %q", e)
	}
	last := gw.waitFor(t, "{temp:22}", func(e string) bool { return strings.HasSuffix(e, "{temp:22}") })
	var ts int64
	if _, err := fmt.Sscanf(last, "data Boiler1/boiler tel@%d{temp:22}", &ts); err != nil || ts < before || ts > time.Now().UnixMilli() {
		t.Fatalf("line without ts: %q, want the read time", last)
	}

	// RPC with response: a data line before the answer stays data.
	c.ServerSideRPC(connector.RPCRequest{Device: "Boiler1", ID: 7, Method: "getStatus", Params: map[string]any{"verbose": true}})
	if got := readLine(t, conn, r); got != "getStatus {\"verbose\":true}\n" {
		t.Fatalf("device got %q", got)
	}
	writeLine(t, conn, "ts=1700000000001;temp=23\nstatus {\"ok\":true,\"uptime\":42}\n")
	if e := gw.wait(t, "reply Boiler1 7 "); e != `reply Boiler1 7 {"result":{"ok":true,"uptime":42}}` {
		t.Fatalf("got %q", e)
	}
	gw.wait(t, "data Boiler1/boiler tel@1700000000001{temp:23}")

	// RPC without response; its command replaces the method name.
	c.ServerSideRPC(connector.RPCRequest{Device: "Boiler1", ID: 8, Method: "resetCounters"})
	if got := readLine(t, conn, r); got != "reset\n" {
		t.Fatalf("device got %q", got)
	}
	if e := gw.wait(t, "reply Boiler1 8 "); e != `reply Boiler1 8 {"success":true}` {
		t.Fatalf("got %q", e)
	}

	// No answer: a timeout reply after responseTimeoutSec.
	start := time.Now()
	c.ServerSideRPC(connector.RPCRequest{Device: "Boiler1", ID: 9, Method: "getStatus"})
	if got := readLine(t, conn, r); got != "getStatus\n" {
		t.Fatalf("device got %q", got)
	}
	if e := gw.wait(t, "reply Boiler1 9 "); e != `reply Boiler1 9 {"error":"Timeout waiting for response","success":false}` {
		t.Fatalf("got %q", e)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timeout after %v, want 0.3 s", d)
	}
	// A late answer is data again (and converts to nothing), not the next RPC's answer.
	writeLine(t, conn, "status late\n")

	// Unknown method and unknown device.
	c.ServerSideRPC(connector.RPCRequest{Device: "Boiler1", ID: 10, Method: "selfDestruct"})
	if e := gw.wait(t, "reply Boiler1 10 "); e != `reply Boiler1 10 {"error":"Method not found","success":false}` {
		t.Fatalf("got %q", e)
	}
	c.ServerSideRPC(connector.RPCRequest{Device: "Nope", ID: 11, Method: "getStatus"})
	if e := gw.wait(t, "reply Nope 11 "); e != `reply Nope 11 {"error":"Device Nope not found","success":false}` {
		t.Fatalf("got %q", e)
	}

	// Attribute updates: the attribute's own entry, and the template for the others,
	// in key order.
	c.OnAttributesUpdate(connector.AttributeUpdate{Device: "Boiler1", Data: map[string]any{
		"setpoint": json.Number("22.5"), "mode": "eco", "enabled": true}})
	for _, want := range []string{"set enabled=true\n", "mode eco\n", "set setpoint=22.5\n"} {
		if got := readLine(t, conn, r); got != want {
			t.Fatalf("device got %q, want %q", got, want)
		}
	}

	// Connector RPC (tcpline_devices): Device "" and the reply to device "".
	c.ServerSideRPC(connector.RPCRequest{ID: 12, Method: "devices"})
	want := fmt.Sprintf(`reply  12 {"result":{"Boiler1":{"address":"127.0.0.1:%d","connected":true}},"success":true}`, dev.port())
	if e := gw.wait(t, "reply  12 "); e != want {
		t.Fatalf("got %q\nwant %q", e, want)
	}
	c.ServerSideRPC(connector.RPCRequest{ID: 13, Method: "explode"})
	if e := gw.wait(t, "reply  13 "); e != `reply  13 {"error":"Method tcpline_explode not found","success":false}` {
		t.Fatalf("got %q", e)
	}

	// Close: the device is told goodbye and sees its connection end.
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close took more than 2 s")
	}
	gw.wait(t, "del Boiler1")
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("the device's connection is still open after Close")
	}
	if !c.IsStopped() || c.IsConnected() {
		t.Fatal("stopped expected after Close")
	}
	c.ServerSideRPC(connector.RPCRequest{Device: "Boiler1", ID: 14, Method: "getStatus"})
	if e := gw.wait(t, "reply Boiler1 14 "); e != `reply Boiler1 14 {"error":"Connector is stopped","success":false}` {
		t.Fatalf("got %q", e)
	}
	if err := c.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
}

// logRecorder collects log messages with their retryIn attribute.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "retryIn" {
			s += " retryIn=" + a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) matching(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

func TestReconnectWithBackoff(t *testing.T) {
	// A port with nobody listening: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	gw := newRecGateway()
	logs := &logRecorder{}
	c := newTestConnector(t, gw, deviceFile(port, ""), slog.New(logs))
	d := c.devices[0]
	d.minBackoff, d.maxBackoff = 20*time.Millisecond, 80*time.Millisecond // 1 s → 30 s in production
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	deadline := time.Now().Add(5 * time.Second)
	for len(logs.matching("cannot connect")) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := logs.matching("cannot connect")
	if len(got) < 4 {
		t.Fatalf("connect failures logged: %q", got)
	}
	want := []string{"20ms", "40ms", "80ms", "80ms"}
	for i, w := range want {
		if got[i] != "cannot connect to device retryIn="+w {
			t.Fatalf("step %d: %q, want retryIn=%s (all: %q)", i, got[i], w, got)
		}
	}
	if c.IsConnected() {
		t.Fatal("IsConnected while the device is down")
	}

	// The device comes up on the same port: the connector connects, and after the
	// device drops the connection it connects again.
	ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Skipf("port %d taken meanwhile: %v", port, err)
	}
	defer ln2.Close()
	accept := func() net.Conn {
		t.Helper()
		_ = ln2.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
		conn, err := ln2.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	c1 := accept()
	writeLine(t, c1, "temp=1\n")
	gw.wait(t, "data Boiler1/boiler tel@")
	c1.Close()
	c2 := accept()
	defer c2.Close()
	writeLine(t, c2, "temp=2\n")
	gw.waitFor(t, "{temp:2}", func(e string) bool { return strings.HasSuffix(e, "{temp:2}") })
	if got := logs.matching("connection to device lost"); len(got) != 1 || !strings.HasSuffix(got[0], "retryIn=80ms") {
		t.Fatalf("lost connection logged as %q", got)
	}
	if n := len(logs.matching("connected to device")); n != 2 {
		t.Fatalf("%d connects logged, want 2", n)
	}
	// AddDevice once, whatever the reconnects.
	gw.mu.Lock()
	adds := 0
	for _, e := range gw.events {
		if strings.HasPrefix(e, "add ") {
			adds++
		}
	}
	gw.mu.Unlock()
	if adds != 1 {
		t.Fatalf("AddDevice called %d times, want 1", adds)
	}
}

func TestLongLineAndReadTimeout(t *testing.T) {
	dev := startDevice(t)
	gw := newRecGateway()
	logs := &logRecorder{}
	c := newTestConnector(t, gw, deviceFile(dev.port(), `,"maxLineLength":32,"readTimeoutSec":0.3`), slog.New(logs))
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, _ := dev.accept(t)
	// 10 KiB without a line break, then a good line: the long one is dropped whole,
	// the connection stays.
	writeLine(t, conn, "fw="+strings.Repeat("x", 10<<10)+"\ntemp=5\n")
	if e := gw.wait(t, "data "); !strings.HasSuffix(e, "{temp:5}") {
		t.Fatalf("got %q", e)
	}
	if got := logs.matching("line longer than maxLineLength dropped"); len(got) != 1 {
		t.Fatalf("long line logged %d times", len(got))
	}
	// Silence longer than readTimeoutSec ends the connection; the connector redials.
	conn2, _ := dev.accept(t)
	defer conn2.Close()
	lost := logs.matching("connection to device lost")
	if len(lost) != 1 {
		t.Fatalf("lost logged %q", lost)
	}
	if !strings.HasSuffix(lost[0], "retryIn=1s") {
		t.Fatalf("retry not after 1 s: %q", lost)
	}
}
