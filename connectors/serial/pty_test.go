package serial

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/iotgw/iotgw/connector"
)

// recGateway is a connector.Gateway that records what the connector does.
type recGateway struct {
	mu      sync.Mutex
	data    []string // AppendConvertedJSON of each SendToStorage
	raw     []*connector.ConvertedData
	added   []string // "name/type"
	deleted []string
	replies []string // `device id content-JSON`
}

func (g *recGateway) SendToStorage(name, id string, d *connector.ConvertedData) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if name != "Serial Connector" || id != "id1" {
		return fmt.Errorf("unexpected connector %q %q", name, id)
	}
	g.data = append(g.data, string(AppendConvertedJSON(nil, d)))
	g.raw = append(g.raw, d)
	return nil
}

func (g *recGateway) AddDevice(name, typ string, c connector.Connector) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.added = append(g.added, name+"/"+typ)
}

func (g *recGateway) DelDevice(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deleted = append(g.deleted, name)
}

func (g *recGateway) SendRPCReply(device string, id int, content any) error {
	b, err := json.Marshal(content)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.replies = append(g.replies, fmt.Sprintf("%s %d %s", device, id, b))
	return nil
}

func (g *recGateway) snapshot() (data, added, deleted, replies []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.data...), append([]string(nil), g.added...),
		append([]string(nil), g.deleted...), append([]string(nil), g.replies...)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakePort is the device side of a pseudo-terminal, its slave reachable through a
// symlink that the connector uses as its port.
type fakePort struct {
	master *os.File
	link   string
}

// newFakePort makes a pty and points link at its slave.
func newFakePort(t *testing.T, link string) *fakePort { return newFakePortTB(t, link) }

func newFakePortTB(t testing.TB, link string) *fakePort {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	name := s.Name()
	s.Close() // the connector opens the slave itself
	tmp := link + ".new"
	if err := os.Symlink(name, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	fp := &fakePort{master: m, link: link}
	t.Cleanup(func() { m.Close() })
	return fp
}

func (p *fakePort) write(t *testing.T, s string) {
	t.Helper()
	if _, err := p.master.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// read reads exactly n bytes written by the connector.
func (p *fakePort) read(t *testing.T, n int) string {
	t.Helper()
	if err := p.master.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.master, b); err != nil {
		t.Fatalf("reading %d bytes from the device side: %v (got %q)", n, err, b)
	}
	return string(b)
}

// testConnectorFile is the guide's device plus what the tests need.
func testConnectorFile(port string) []byte {
	return []byte(`{
  "name": "Custom serial connector", "logLevel": "DEBUG", "uplinkQueueSize": 100000,
  "devices": [{
    "name": "SerialDevice1", "type": "default", "port": "` + port + `", "baudrate": 9600,
    "converter": "SerialUplinkConverter", "downlink_converter": "SerialDownlinkConverter",
    "telemetry": [{"type": "float", "key": "humidity", "untilDelimiter": "\r"}],
    "attributes": [{"key": "SerialNumber", "type": "string", "fromByte": 4, "toByte": -1}],
    "attributeUpdates": [
      {"attributeOnPlatform": "attr1", "stringToDevice": "value = ${attr1}\n"},
      {"attributeOnThingsBoard": "led", "stringToDevice": "${deviceName}/${deviceType} led=${led}\n"}
    ],
    "serverSideRpc": [
      {"method": "setValue", "type": "int", "withResponse": true, "responseType": "string",
       "responseUntilDelimiter": "\r", "responseTimeoutSec": 5},
      {"method": "getValue", "type": "string", "withResponse": false},
      {"method": "slow", "type": "string", "withResponse": true, "responseTimeoutSec": 0.2}
    ]
  }]
}`)
}

// startConnector makes and opens a connector on a fresh pty and waits until its port is open.
func startConnector(t *testing.T) (*SerialConnector, *recGateway, *fakePort, *syncBuffer) {
	t.Helper()
	link := filepath.Join(t.TempDir(), "ttyGW")
	fp := newFakePort(t, link)
	gw := &recGateway{}
	logs := &syncBuffer{}
	cfg := factoryConfig(testConnectorFile(link))
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Converters = connector.BuiltinConverters{Logger: cfg.Logger}
	c, err := newConnector(gw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	waitFor(t, "port open", 5*time.Second, c.IsConnected)
	return c, gw, fp, logs
}

func TestPTYUplink(t *testing.T) {
	c, gw, fp, logs := startConnector(t)
	if c.IsStopped() {
		t.Fatal("IsStopped after Open")
	}
	before := time.Now().UnixMilli()
	// A frame in two pieces with a pause longer than the read timeout in between: the
	// partial frame is kept, not converted.
	fp.write(t, "48\r24309")
	time.Sleep(1200 * time.Millisecond)
	fp.write(t, "47595\n")
	// Garbage: not a number, invalid UTF-8; nothing converts, nothing is sent.
	fp.write(t, "abc\r\xff\xfe\xfd\xfc\n")
	fp.write(t, "0\r2000000001\n")
	waitFor(t, "two records", 5*time.Second, func() bool { d, _, _, _ := gw.snapshot(); return len(d) >= 2 })
	after := time.Now().UnixMilli()
	data, added, _, _ := gw.snapshot()
	gw.mu.Lock()
	ts := gw.raw[0].Telemetry[0].TS
	gw.mu.Unlock()
	if ts < before || ts > after {
		t.Errorf("ts %d not within [%d, %d]", ts, before, after)
	}
	want := []string{
		`{"deviceName":"SerialDevice1","deviceType":"default","telemetry":[{"ts":TS,"values":{"humidity":48}}],"attributes":{"SerialNumber":"430947595"}}`,
		`{"deviceName":"SerialDevice1","deviceType":"default","telemetry":[{"ts":TS,"values":{"humidity":0}}],"attributes":{"SerialNumber":"00000001"}}`,
	}
	for i, w := range want {
		if got := tsRE(data[i]); got != w {
			t.Errorf("record %d\n got %s\nwant %s", i, data[i], w)
		}
	}
	if len(data) != 2 {
		t.Errorf("records %q", data)
	}
	if len(added) != 1 || added[0] != "SerialDevice1/default" {
		t.Errorf("AddDevice calls %q", added)
	}
	out := logs.String()
	for _, w := range []string{
		`level=ERROR msg="cannot convert datapoint" device=SerialDevice1 telemetry=humidity type=float error="not a number: \"abc\"" frame=6162630dfffefdfc0a`,
		`level=ERROR msg="cannot convert datapoint" device=SerialDevice1 attribute=SerialNumber type=string error="invalid UTF-8" frame=6162630dfffefdfc0a`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %s\n%s", w, out)
		}
	}
}

// tsRE replaces the value of "ts" with TS.
func tsRE(s string) string {
	i := strings.Index(s, `"ts":`)
	if i < 0 {
		return s
	}
	j := i + 5
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	return s[:i+5] + "TS" + s[j:]
}

func TestPTYAttributeUpdates(t *testing.T) {
	c, _, fp, _ := startConnector(t)
	c.OnAttributesUpdate(connector.AttributeUpdate{Device: "SerialDevice1", Data: map[string]any{"attr1": json.Number("25")}})
	if got := fp.read(t, len("value = 25\n")); got != "value = 25\n" {
		t.Fatalf("device got %q", got)
	}
	c.OnAttributesUpdate(connector.AttributeUpdate{Device: "SerialDevice1", Data: map[string]any{"led": true}})
	w := "SerialDevice1/default led=true\n"
	if got := fp.read(t, len(w)); got != w {
		t.Fatalf("device got %q", got)
	}
	c.OnAttributesUpdate(connector.AttributeUpdate{Device: "SerialDevice1", Data: map[string]any{"attr1": json.Number("2.50"), "led": false, "other": 1}})
	got := fp.read(t, len("value = 2.50\n")+len("SerialDevice1/default led=false\n"))
	if got != "value = 2.50\nSerialDevice1/default led=false\n" {
		t.Fatalf("device got %q", got)
	}
	// An update for an unknown device or attribute writes nothing and does not block.
	c.OnAttributesUpdate(connector.AttributeUpdate{Device: "nope", Data: map[string]any{"attr1": 1}})
	c.OnAttributesUpdate(connector.AttributeUpdate{Device: "SerialDevice1", Data: map[string]any{"zzz": 1}})
	c.OnAttributesUpdate(connector.AttributeUpdate{Device: "SerialDevice1", Data: map[string]any{"attr1": "x"}})
	if got := fp.read(t, len("value = x\n")); got != "value = x\n" {
		t.Fatalf("device got %q", got)
	}
}

func TestPTYRPC(t *testing.T) {
	c, gw, fp, _ := startConnector(t)
	waitReply := func(n int) string {
		t.Helper()
		waitFor(t, "RPC reply", 5*time.Second, func() bool { _, _, _, r := gw.snapshot(); return len(r) >= n })
		_, _, _, r := gw.snapshot()
		return r[n-1]
	}

	// With response: the params go out as the int's bytes, the next frame is the answer
	// and does not reach telemetry.
	c.ServerSideRPC(connector.RPCRequest{Device: "SerialDevice1", ID: 1, Method: "setValue", Params: json.Number("300")})
	if got := fp.read(t, 2); got != "\x01\x2c" {
		t.Fatalf("device got %x", got)
	}
	fp.write(t, "OK\r12345\n")
	if got := waitReply(1); got != `SerialDevice1 1 {"result":"OK"}` {
		t.Fatalf("reply %s", got)
	}

	// Without response.
	c.ServerSideRPC(connector.RPCRequest{Device: "SerialDevice1", ID: 2, Method: "getValue", Params: "status?\n"})
	if got := fp.read(t, len("status?\n")); got != "status?\n" {
		t.Fatalf("device got %q", got)
	}
	if got := waitReply(2); got != `SerialDevice1 2 {"success":true}` {
		t.Fatalf("reply %s", got)
	}

	// Timeout: no frame within responseTimeoutSec.
	c.ServerSideRPC(connector.RPCRequest{Device: "SerialDevice1", ID: 3, Method: "slow", Params: "x"})
	fp.read(t, 1)
	if got := waitReply(3); got != `SerialDevice1 3 {"error":"Timeout waiting for response","success":false}` {
		t.Fatalf("reply %s", got)
	}

	// Unknown method, and params the converter refuses.
	c.ServerSideRPC(connector.RPCRequest{Device: "SerialDevice1", ID: 4, Method: "explode"})
	if got := waitReply(4); got != `SerialDevice1 4 {"error":"Method not found","success":false}` {
		t.Fatalf("reply %s", got)
	}
	c.ServerSideRPC(connector.RPCRequest{Device: "SerialDevice1", ID: 5, Method: "setValue", Params: "abc"})
	if got := waitReply(5); got != `SerialDevice1 5 {"error":"cannot convert \"abc\" to int","success":false}` {
		t.Fatalf("reply %s", got)
	}

	// Telemetry still flows after the RPCs, and the response frame never reached it.
	fp.write(t, "50\r2111\n")
	waitFor(t, "telemetry", 5*time.Second, func() bool { d, _, _, _ := gw.snapshot(); return len(d) >= 1 })
	data, _, _, _ := gw.snapshot()
	if len(data) != 1 || !strings.Contains(data[0], `"humidity":50`) {
		t.Fatalf("records %q", data)
	}
}

// Unplugging the device (closing the pty master: EIO on the slave) closes the port;
// a new pty at the same path is picked up without a restart.
func TestPTYUnplugReplug(t *testing.T) {
	c, gw, fp, logs := startConnector(t)
	fp.write(t, "1\r0001\n")
	waitFor(t, "first record", 5*time.Second, func() bool { d, _, _, _ := gw.snapshot(); return len(d) == 1 })

	fp.master.Close()
	waitFor(t, "disconnect", 5*time.Second, func() bool { return !c.IsConnected() })
	fp2 := newFakePort(t, fp.link)
	waitFor(t, "reconnect", 10*time.Second, c.IsConnected)
	fp2.write(t, "2\r0002\n")
	waitFor(t, "record after replug", 5*time.Second, func() bool { d, _, _, _ := gw.snapshot(); return len(d) == 2 })
	data, added, _, _ := gw.snapshot()
	if !strings.Contains(data[1], `"humidity":2`) {
		t.Fatalf("records %q", data)
	}
	if len(added) != 1 {
		t.Errorf("AddDevice called %d times, want once", len(added))
	}
	if !strings.Contains(logs.String(), `msg="serial port failed, reopening"`) {
		t.Errorf("no failure log:\n%s", logs.String())
	}

	start := time.Now()
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	_, _, deleted, _ := gw.snapshot()
	if len(deleted) != 1 || deleted[0] != "SerialDevice1" || !c.IsStopped() || c.IsConnected() {
		t.Errorf("after Close: deleted %q stopped %v connected %v", deleted, c.IsStopped(), c.IsConnected())
	}
	c.Close() // twice is fine
}

// A port that cannot be opened is retried with a doubling backoff, one log line per
// step, while other devices work; Close returns at once.
func TestOpenFailureBackoff(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyOK")
	fp := newFakePort(t, link)
	raw := []byte(`{"devices":[{"name":"missing","port":"` + filepath.Join(t.TempDir(), "nope") + `"},
		{"name":"ok","port":"` + link + `","timeout":null,"telemetry":[{"key":"v","type":"int"}]}]}`)
	logs := &syncBuffer{}
	cfg := factoryConfig(raw)
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	gw := &recGateway{}
	c, err := newConnector(gw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.devices[0].minBackoff, c.devices[0].maxBackoff = 20*time.Millisecond, 80*time.Millisecond
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "five attempts", 5*time.Second, func() bool {
		return strings.Count(logs.String(), "cannot open serial port") >= 5
	})
	if c.IsConnected() {
		t.Error("IsConnected with one device missing")
	}
	fp.write(t, "7\n")
	waitFor(t, "data from the working device", 5*time.Second, func() bool { d, _, _, _ := gw.snapshot(); return len(d) == 1 })
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v (the working device reads without timeout)", d)
	}
	var steps []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if i := strings.Index(l, "retryIn="); i >= 0 && strings.Contains(l, "cannot open serial port") {
			steps = append(steps, l[i+len("retryIn="):])
		}
	}
	if got := strings.Join(steps[:5], " "); got != "20ms 40ms 80ms 80ms 80ms" {
		t.Errorf("backoff steps %q", got)
	}
	data, added, deleted, _ := gw.snapshot()
	if data[0] != `{"deviceName":"ok","deviceType":"default","telemetry":[`+data[0][strings.Index(data[0], `{"ts"`):strings.Index(data[0], `,"values"`)]+`,"values":{"v":7}}],"attributes":{}}` {
		t.Errorf("record %s", data[0])
	}
	if strings.Join(added, ",") != "ok/default" || strings.Join(deleted, ",") != "missing,ok" {
		t.Errorf("added %q deleted %q", added, deleted)
	}
}

// writeTimeout bounds a write the device does not take (a pty whose master is never
// read fills up); Close interrupts a write in progress.
func TestPTYWriteTimeout(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyW")
	newFakePort(t, link)
	big := strings.Repeat("x", 1<<20)
	raw, _ := json.Marshal(map[string]any{"devices": []any{
		map[string]any{"name": "w", "port": link, "writeTimeout": 0.2,
			"attributeUpdates": []any{map[string]any{"attributeOnPlatform": "a", "stringToDevice": big}}},
		map[string]any{"name": "nw", "port": link + "2",
			"attributeUpdates": []any{map[string]any{"attributeOnPlatform": "a", "stringToDevice": big}}},
	}})
	newFakePort(t, link+"2")
	logs := &syncBuffer{}
	cfg := factoryConfig(raw)
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	c, err := newConnector(&recGateway{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "ports open", 5*time.Second, c.IsConnected)
	start := time.Now()
	c.OnAttributesUpdate(connector.AttributeUpdate{Device: "w", Data: map[string]any{"a": 1}})
	c.OnAttributesUpdate(connector.AttributeUpdate{Device: "nw", Data: map[string]any{"a": 1}})
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("OnAttributesUpdate blocked for %v", d)
	}
	waitFor(t, "write timeout", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "cannot write attribute update to device") && strings.Contains(logs.String(), "i/o timeout")
	})
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("write gave up after %v, before writeTimeout", d)
	}
	// Device "nw" has no writeTimeout: its write is still blocked; Close interrupts it.
	start = time.Now()
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}

// Binary frames without a terminator, cut by silence (frameGapMs) on a real pty.
func TestPTYFrameGap(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyGap")
	fp := newFakePort(t, link)
	raw := []byte(`{"devices":[{"name":"modbus","port":"` + link + `","frameGapMs":250,
		"telemetry":[{"key":"addr","toByte":1},{"key":"payload","fromByte":1}]}]}`)
	gw := &recGateway{}
	cfg := factoryConfig(raw)
	c, err := newConnector(gw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "port open", 5*time.Second, c.IsConnected)
	fp.write(t, "\x01\x03")
	time.Sleep(10 * time.Millisecond)
	fp.write(t, "\x0a\x0d") // same frame: the gap was shorter than 250 ms
	time.Sleep(700 * time.Millisecond)
	fp.write(t, "\x02\xff")
	waitFor(t, "two frames", 5*time.Second, func() bool { d, _, _, _ := gw.snapshot(); return len(d) == 2 })
	data, _, _, _ := gw.snapshot()
	got := tsRE(data[0]) + "\n" + tsRE(data[1])
	want := `{"deviceName":"modbus","deviceType":"default","telemetry":[{"ts":TS,"values":{"addr":"01","payload":"030a0d"}}],"attributes":{}}` + "\n" +
		`{"deviceName":"modbus","deviceType":"default","telemetry":[{"ts":TS,"values":{"addr":"02","payload":"ff"}}],"attributes":{}}`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// TestPTYRPCAtClose: an RPC waiting for its response, and one queued behind it, both
// get a reply when the connector closes, so the platform is not left waiting.
func TestPTYRPCAtClose(t *testing.T) {
	c, gw, fp, _ := startConnector(t)
	c.ServerSideRPC(connector.RPCRequest{Device: "SerialDevice1", ID: 1, Method: "setValue", Params: json.Number("1")})
	fp.read(t, 1) // written: now waiting for the device's answer
	c.ServerSideRPC(connector.RPCRequest{Device: "SerialDevice1", ID: 2, Method: "setValue", Params: json.Number("2")})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both replies", 5*time.Second, func() bool { _, _, _, r := gw.snapshot(); return len(r) == 2 })
	_, _, _, r := gw.snapshot()
	for i, want := range []string{
		`SerialDevice1 1 {"error":"Connector is stopped","success":false}`,
		`SerialDevice1 2 {"error":"Connector is stopped","success":false}`,
	} {
		if r[i] != want {
			t.Fatalf("reply %d: %s, want %s", i+1, r[i], want)
		}
	}
}

// TestManyPorts opens 300 devices, which puts descriptor numbers past 1024 (a pty
// pair in the test, two descriptors per port in the connector): every device's
// frame arrives. go.bug.st/serial's select(2)-based Read crashed past 1024.
func TestManyPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("300 ptys")
	}
	const n = 300
	dir := t.TempDir()
	var devs []string
	var ports []*fakePort
	for i := range n {
		link := filepath.Join(dir, fmt.Sprintf("tty%d", i))
		ports = append(ports, newFakePort(t, link))
		devs = append(devs, fmt.Sprintf(`{"name":"D%d","port":%q,"telemetry":[{"key":"v","type":"int","toByte":-1}]}`, i, link))
	}
	gw := &recGateway{}
	cfg := factoryConfig([]byte(`{"devices":[` + strings.Join(devs, ",") + `]}`))
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Converters = connector.BuiltinConverters{Logger: cfg.Logger}
	c, err := newConnector(gw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	waitFor(t, "all ports open", 20*time.Second, c.IsConnected)
	for i, p := range ports {
		p.write(t, fmt.Sprintf("%d\n", i))
	}
	waitFor(t, "a frame from every device", 20*time.Second, func() bool {
		data, _, _, _ := gw.snapshot()
		return len(data) == n
	})
}
