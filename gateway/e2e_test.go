package gateway_test

import (
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

	"github.com/iotgw/iotgw/internal/gatewaytest"

	"github.com/iotgw/iotgw/config"
	"github.com/iotgw/iotgw/connector"
	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/internal/brokertest"
)

// testConn is a connector registered through the public API, driven by the test.
type testConn struct {
	gw   connector.Gateway
	cfg  connector.Config
	mu   sync.Mutex
	attr []connector.AttributeUpdate
	rpcs []connector.RPCRequest
	open bool
	// rpcDelay makes ServerSideRPC reply after a while (serialization test).
	rpcDelay time.Duration
	active   int
	maxAct   int
}

var (
	connsMu sync.Mutex
	conns   = map[string]*testConn{}
)

func init() {
	connector.Register("testconn", "TestConnector", func(gw connector.Gateway, cfg connector.Config) (connector.Connector, error) {
		var c struct {
			Fail string `json:"fail"`
		}
		if err := json.Unmarshal(cfg.Raw, &c); err != nil || c.Fail != "" {
			return nil, fmt.Errorf("%s: fail: invalid (expected no fail key, got %q)", cfg.Path, c.Fail)
		}
		tc := &testConn{gw: gw, cfg: cfg}
		connsMu.Lock()
		conns[cfg.Name] = tc
		connsMu.Unlock()
		return tc, nil
	})
}

func (c *testConn) Open(context.Context) error { c.mu.Lock(); c.open = true; c.mu.Unlock(); return nil }
func (c *testConn) Close() error               { c.mu.Lock(); c.open = false; c.mu.Unlock(); return nil }
func (c *testConn) Name() string               { return c.cfg.Name }
func (c *testConn) Type() string               { return c.cfg.Type }
func (c *testConn) ID() string                 { return c.cfg.ID }
func (c *testConn) IsConnected() bool          { return true }
func (c *testConn) IsStopped() bool            { c.mu.Lock(); defer c.mu.Unlock(); return !c.open }
func (c *testConn) OnAttributesUpdate(u connector.AttributeUpdate) {
	c.mu.Lock()
	c.attr = append(c.attr, u)
	c.mu.Unlock()
}
func (c *testConn) ServerSideRPC(r connector.RPCRequest) {
	c.mu.Lock()
	c.rpcs = append(c.rpcs, r)
	c.active++
	c.maxAct = max(c.maxAct, c.active)
	d := c.rpcDelay
	c.mu.Unlock()
	time.Sleep(d)
	c.mu.Lock()
	c.active--
	c.mu.Unlock()
	_ = c.gw.SendRPCReply(r.Device, r.ID, map[string]any{"result": r.Method + "-done"})
}

func (c *testConn) send(t *testing.T, device string, ts int64, kv ...any) {
	t.Helper()
	d := &connector.ConvertedData{DeviceName: device, DeviceType: "thermo"}
	var vals []connector.Datapoint
	for i := 0; i+1 < len(kv); i += 2 {
		vals = append(vals, connector.Datapoint{Key: kv[i].(string), Value: connector.ValueOf(kv[i+1])})
	}
	d.AddTelemetry(ts, vals...)
	if err := c.gw.SendToStorage(c.cfg.Name, c.cfg.ID, d); err != nil {
		t.Fatal(err)
	}
}

// setup writes a tb_gateway.json pointing at the broker with one test connector,
// and starts the gateway. It returns the connector and a stop function.
func setup(t *testing.T, b *brokertest.Broker, storageJSON string) (*testConn, func()) {
	t.Helper()
	return setupAt(t, b.Host(), b.Port(), storageJSON)
}

// setupAt is setup against any broker.
func setupAt(t *testing.T, host string, port int, storageJSON string) (*testConn, func()) {
	t.Helper()
	dir := t.TempDir()
	name := "TC-" + strings.ReplaceAll(t.Name(), "/", "-")
	if storageJSON == "" {
		storageJSON = `{"type":"memory","max_records_count":100000}`
	}
	main := fmt.Sprintf(`{"thingsboard":{"host":%q,"port":%d,"security":{"type":"accessToken","accessToken":"TOKEN"},"qos":1,"maxPayloadSizeBytes":4096},
"storage":%s,
"connectors":[{"name":%q,"type":"testconn","class":"TestConnector","configuration":"tc.json"}]}`, host, port, storageJSON, name)
	must(t, os.WriteFile(filepath.Join(dir, "tb_gateway.json"), []byte(main), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "tc.json"), []byte(`{"name":"x"}`), 0o644))
	cfg, _, err := config.Load(filepath.Join(dir, "tb_gateway.json"))
	must(t, err)
	gw, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
	must(t, err)
	stop := gatewaytest.Run(t, gw)
	connsMu.Lock()
	tc := conns[name]
	connsMu.Unlock()
	return tc, stop
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTelemetryOnTheWire(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	tc, _ := setup(t, b, "")
	tc.send(t, "D1", 1700000000000, "temp", 21.5, "on", true)

	m, ok := b.WaitFor("v1/gateway/telemetry", nil, 5*time.Second)
	if !ok {
		t.Fatal("no telemetry")
	}
	if got, want := string(m.Payload), `{"D1":[{"ts":1700000000000,"values":{"temp":21.5,"on":true}}]}`; got != want {
		t.Fatalf("telemetry payload\n got %s\nwant %s", got, want)
	}
	c, ok := b.WaitFor("v1/gateway/connect", nil, time.Second)
	if !ok || string(c.Payload) != `{"device":"D1","type":"thermo"}` {
		t.Fatalf("connect payload %q", c.Payload)
	}
	if m.Username != "TOKEN" {
		t.Fatalf("username %q, want the access token", m.Username)
	}
	// The connect message precedes the device's data.
	all := b.Messages("")
	var order []string
	for _, m := range all {
		order = append(order, m.Topic)
	}
	ci, ti := indexOf(order, "v1/gateway/connect"), indexOf(order, "v1/gateway/telemetry")
	if ci < 0 || ti < 0 || ci > ti {
		t.Fatalf("connect must precede telemetry: %v", order)
	}
}

func TestAttributesUplinkAndDownlink(t *testing.T) {
	b := brokertest.Start(t, "")
	tc, _ := setup(t, b, "")
	d := &connector.ConvertedData{DeviceName: "D2", DeviceType: "default"}
	d.AddAttribute("SerialNumber", connector.String("2430947595"))
	must(t, tc.gw.SendToStorage(tc.cfg.Name, tc.cfg.ID, d))
	m, ok := b.WaitFor("v1/gateway/attributes", nil, 5*time.Second)
	if !ok || string(m.Payload) != `{"D2":{"SerialNumber":"2430947595"}}` {
		t.Fatalf("attributes payload %q", m.Payload)
	}

	b.Publish("v1/gateway/attributes", []byte(`{"device":"D2","data":{"attr1":25}}`))
	waitUntil(t, func() bool { tc.mu.Lock(); defer tc.mu.Unlock(); return len(tc.attr) == 1 })
	tc.mu.Lock()
	got := tc.attr[0]
	tc.mu.Unlock()
	if got.Device != "D2" || fmt.Sprint(got.Data["attr1"]) != "25" {
		t.Fatalf("attribute update %+v", got)
	}
}

func TestRPCRoundTripAndUnknownDevice(t *testing.T) {
	b := brokertest.Start(t, "")
	tc, _ := setup(t, b, "")
	tc.send(t, "D3", 0, "x", 1)
	b.WaitFor("v1/gateway/telemetry", nil, 5*time.Second)

	b.Publish("v1/gateway/rpc", []byte(`{"device":"D3","data":{"id":7,"method":"setValue","params":5}}`))
	m, ok := b.WaitFor("v1/gateway/rpc", func(m brokertest.Msg) bool { return strings.Contains(string(m.Payload), `"id":7`) }, 5*time.Second)
	if !ok || string(m.Payload) != `{"device":"D3","id":7,"data":{"result":"setValue-done"}}` {
		t.Fatalf("rpc reply %q", m.Payload)
	}
	tc.mu.Lock()
	r := tc.rpcs[0]
	tc.mu.Unlock()
	if r.Method != "setValue" || fmt.Sprint(r.Params) != "5" || r.ID != 7 {
		t.Fatalf("rpc request %+v", r)
	}

	b.Publish("v1/gateway/rpc", []byte(`{"device":"Nope","data":{"id":8,"method":"m","params":{}}}`))
	m, ok = b.WaitFor("v1/gateway/rpc", func(m brokertest.Msg) bool { return strings.Contains(string(m.Payload), `"id":8`) }, 2*time.Second)
	if !ok || string(m.Payload) != `{"device":"Nope","id":8,"data":{"error":"Device Nope not found","success":false}}` {
		t.Fatalf("unknown device reply %q", m.Payload)
	}
}

func TestRPCSerializedPerDevice(t *testing.T) {
	b := brokertest.Start(t, "")
	tc, _ := setup(t, b, "")
	tc.mu.Lock()
	tc.rpcDelay = 100 * time.Millisecond
	tc.mu.Unlock()
	tc.send(t, "D4", 0, "x", 1)
	b.WaitFor("v1/gateway/telemetry", nil, 5*time.Second)
	for i := 1; i <= 3; i++ {
		b.Publish("v1/gateway/rpc", fmt.Appendf(nil, `{"device":"D4","data":{"id":%d,"method":"m","params":null}}`, i))
	}
	ok := b.WaitCount("v1/gateway/rpc", func(ms []brokertest.Msg) bool {
		n := 0
		for _, m := range ms {
			if strings.Contains(string(m.Payload), `"result"`) {
				n++
			}
		}
		return n == 3
	}, 5*time.Second)
	if !ok {
		t.Fatal("3 replies expected")
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.maxAct != 1 {
		t.Fatalf("RPCs to one device ran %d at once, want 1", tc.maxAct)
	}
}

// TestBrokerOutage stops the broker for 3 s while data flows: every record arrives,
// in order, none lost.
func TestBrokerOutage(t *testing.T) {
	for _, st := range []struct{ name, json string }{
		{"memory", ""},
	} {
		t.Run(st.name, func(t *testing.T) {
			b := brokertest.Start(t, "")
			tc, _ := setup(t, b, st.json)
			const n = 3000
			go func() {
				for i := range n {
					if i == n/3 {
						b.Stop()
						time.AfterFunc(3*time.Second, b.Restart)
					}
					tc.send(t, "D5", int64(i+1), "seq", i)
					if i%100 == 0 {
						time.Sleep(20 * time.Millisecond)
					}
				}
			}()
			seqs := func(ms []brokertest.Msg) []int64 {
				var out []int64
				for _, m := range ms {
					var p map[string][]struct {
						TS int64 `json:"ts"`
					}
					if json.Unmarshal(m.Payload, &p) == nil {
						for _, e := range p["D5"] {
							out = append(out, e.TS)
						}
					}
				}
				return out
			}
			ok := b.WaitCount("v1/gateway/telemetry", func(ms []brokertest.Msg) bool {
				return distinct(seqs(ms)) == n
			}, 30*time.Second)
			got := seqs(b.Messages("v1/gateway/telemetry"))
			if !ok {
				t.Fatalf("got %d distinct of %d records after the outage", distinct(got), n)
			}
			assertFirstSeenInOrder(t, got)
		})
	}
}

// assertFirstSeenInOrder checks per-device order under at-least-once delivery: a
// resent batch may repeat values already seen, but every value seen for the first
// time is larger than all values before it.
func assertFirstSeenInOrder(t *testing.T, got []int64) {
	t.Helper()
	seen := map[int64]bool{}
	last := int64(-1)
	for _, v := range got {
		if seen[v] {
			continue
		}
		seen[v] = true
		if v < last {
			t.Fatalf("out of order: %d first seen after %d", v, last)
		}
		last = v
	}
}

func distinct(v []int64) int {
	m := map[int64]bool{}
	for _, x := range v {
		m[x] = true
	}
	return len(m)
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

func waitUntil(t *testing.T, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMaxPayloadSplitsLargeData: one ConvertedData far larger than
// maxPayloadSizeBytes (4096 here) is split into messages that fit, every entry
// arrives, and data behind it is not held back.
func TestMaxPayloadSplitsLargeData(t *testing.T) {
	b := brokertest.Start(t, "")
	tc, _ := setup(t, b, "")
	d := &connector.ConvertedData{DeviceName: "Big", DeviceType: "t"}
	for i := range 500 {
		d.AddTelemetry(int64(1700000000000+i), connector.Datapoint{Key: "temperature", Value: connector.Int(int64(i))})
	}
	one := connector.TelemetryEntry{TS: 1}
	for i := range 400 {
		one.Values = append(one.Values, connector.Datapoint{Key: fmt.Sprintf("k%03d", i), Value: connector.Int(int64(i))})
	}
	d.Telemetry = append(d.Telemetry, one)
	must(t, tc.gw.SendToStorage(tc.cfg.Name, tc.cfg.ID, d))
	tc.send(t, "Small", 2, "small", 1)
	if _, ok := b.WaitFor("v1/gateway/telemetry", func(m brokertest.Msg) bool { return strings.Contains(string(m.Payload), `"small"`) }, 10*time.Second); !ok {
		t.Fatal("the record behind the large one did not arrive")
	}
	entries, keys := 0, map[string]bool{}
	for _, m := range b.Messages("v1/gateway/telemetry") {
		if len(m.Payload) > 4096 {
			t.Fatalf("a message of %d bytes passed maxPayloadSizeBytes 4096", len(m.Payload))
		}
		var p map[string][]struct {
			TS     int64          `json:"ts"`
			Values map[string]any `json:"values"`
		}
		must(t, json.Unmarshal(m.Payload, &p))
		for _, e := range p["Big"] {
			if e.TS == 1 {
				for k := range e.Values {
					keys[k] = true
				}
			} else {
				entries++
			}
		}
	}
	if entries != 500 || len(keys) != 400 {
		t.Fatalf("got %d entries and %d keys of the wide entry, want 500 and 400", entries, len(keys))
	}
}
