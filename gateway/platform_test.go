package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/gatewaytest"

	"github.com/iotgw/iotgw/config"
	"github.com/iotgw/iotgw/connector"
	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/internal/brokertest"
)

// fakeClock is the clock of report strategies and inactivity checks in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// envOpts describes one gateway of a platform test.
type envOpts struct {
	tb    string            // extra "thingsboard" keys, each followed by a comma
	conn  string            // the connector file ({"name":"x"} when empty)
	dir   string            // configuration folder to reuse (a new one when empty)
	files map[string]string // more files in the folder
	typ   string            // connector type ("testconn" when empty)
}

type gwEnv struct {
	gw    *gateway.Gateway
	tc    *testConn
	cfg   *config.Gateway
	dir   string
	name  string // connector name
	clock *fakeClock
	stop  func()
}

// startGW writes tb_gateway.json pointing at b and runs a gateway with one test
// connector and a fake clock. Statistics and the shared-attributes sync are off
// unless o.tb sets them.
func startGW(t *testing.T, b *brokertest.Broker, o envOpts) *gwEnv {
	t.Helper()
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	name := "TC-" + strings.ReplaceAll(t.Name(), "/", "-")
	extra := o.tb
	if !strings.Contains(extra, `"statistics"`) {
		extra += `"statistics":{"enable":false},`
	}
	if !strings.Contains(extra, `"syncDevicesSharedAttributesOnConnect"`) {
		extra += `"syncDevicesSharedAttributesOnConnect":false,`
	}
	typ := o.typ
	if typ == "" {
		typ = "testconn"
	}
	main := fmt.Sprintf(`{"thingsboard":{%s"host":%q,"port":%d,"security":{"type":"accessToken","accessToken":"TOKEN"},"qos":1,"maxPayloadSizeBytes":4096},
"storage":{"type":"memory","max_records_count":100000},
"connectors":[{"name":%q,"type":%q,"class":"TestConnector","configuration":"tc.json"}]}`, extra, b.Host(), b.Port(), name, typ)
	must(t, os.WriteFile(filepath.Join(dir, "tb_gateway.json"), []byte(main), 0o644))
	conn := o.conn
	if conn == "" {
		conn = `{"name":"x"}`
	}
	must(t, os.WriteFile(filepath.Join(dir, "tc.json"), []byte(conn), 0o644))
	for f, content := range o.files {
		must(t, os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644))
	}
	cfg, _, err := config.Load(filepath.Join(dir, "tb_gateway.json"))
	must(t, err)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	gw, err := gateway.New(cfg, gateway.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test", Now: clock.Now,
	})
	must(t, err)
	stop := gatewaytest.Run(t, gw)
	connsMu.Lock()
	tc := conns[name]
	connsMu.Unlock()
	waitUntil(t, func() bool { return gw.Connected() && !tc.IsStopped() })
	return &gwEnv{gw: gw, tc: tc, cfg: cfg, dir: dir, name: name, clock: clock, stop: stop}
}

// sendData hands the connector's data to the gateway as a converter would.
func (e *gwEnv) sendData(t *testing.T, d *connector.ConvertedData) {
	t.Helper()
	must(t, e.gw.SendToStorage(e.tc.cfg.Name, e.tc.cfg.ID, d))
}

// entries returns the telemetry entries the broker got for device, in order, each
// as its exact JSON.
func entries(b *brokertest.Broker, device string) []string {
	var out []string
	for _, m := range b.Messages("v1/gateway/telemetry") {
		var p map[string][]json.RawMessage
		if json.Unmarshal(m.Payload, &p) == nil {
			for _, e := range p[device] {
				out = append(out, string(e))
			}
		}
	}
	return out
}

// waitEntries waits until device has n telemetry entries and returns them.
func waitEntries(t *testing.T, b *brokertest.Broker, device string, n int) []string {
	t.Helper()
	b.WaitCount("v1/gateway/telemetry", func([]brokertest.Msg) bool { return len(entries(b, device)) >= n }, 5*time.Second)
	got := entries(b, device)
	if len(got) < n {
		t.Fatalf("%s: %d telemetry entries, want %d: %v", device, len(got), n, got)
	}
	return got
}

// payloads returns the payloads published on topic, as strings.
func payloads(b *brokertest.Broker, topic string) []string {
	var out []string
	for _, m := range b.Messages(topic) {
		out = append(out, string(m.Payload))
	}
	return out
}

// gatewayRPC calls one of the gateway's own RPCs as the platform does and returns
// the reply.
func gatewayRPC(t *testing.T, b *brokertest.Broker, id int, req string) string {
	t.Helper()
	b.Publish(fmt.Sprintf("v1/devices/me/rpc/request/%d", id), []byte(req))
	m, ok := b.WaitFor(fmt.Sprintf("v1/devices/me/rpc/response/%d", id), nil, 5*time.Second)
	if !ok {
		t.Fatalf("no reply to gateway RPC %s", req)
	}
	return string(m.Payload)
}

func tel(device string, ts int64, kv ...any) *connector.ConvertedData {
	d := &connector.ConvertedData{DeviceName: device, DeviceType: "thermo"}
	var vals []connector.Datapoint
	for i := 0; i+1 < len(kv); i += 2 {
		vals = append(vals, connector.Datapoint{Key: kv[i].(string), Value: connector.ValueOf(kv[i+1])})
	}
	d.AddTelemetry(ts, vals...)
	return d
}

func TestReportStrategyOnChange(t *testing.T) {
	for _, tt := range []struct {
		name, tb, conn string
		dpStrategy     *connector.ReportStrategy
	}{
		{name: "gateway", tb: `"reportStrategy":{"type":"ON_CHANGE"},`},
		{name: "connector", conn: `{"name":"x","reportStrategy":{"type":"ON_CHANGE"}}`},
		{name: "datapoint", dpStrategy: &connector.ReportStrategy{Type: connector.OnChange}},
		// A DISABLED gateway switches strategies off whatever the lower levels say.
		{name: "gateway-disabled", tb: `"reportStrategy":{"type":"DISABLED"},`, conn: `{"name":"x","reportStrategy":{"type":"ON_CHANGE"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := brokertest.Start(t, "TOKEN")
			e := startGW(t, b, envOpts{tb: tt.tb, conn: tt.conn})
			for i, v := range []float64{21.5, 21.5, 21.5004, 22} {
				d := tel("D", int64(1000+i), "temp", v)
				d.Telemetry[0].Values[0].Strategy = tt.dpStrategy
				e.sendData(t, d)
			}
			want := []string{`{"ts":1000,"values":{"temp":21.5}}`, `{"ts":1003,"values":{"temp":22}}`}
			suppressed := uint64(2)
			if tt.name == "gateway-disabled" {
				want = []string{`{"ts":1000,"values":{"temp":21.5}}`, `{"ts":1001,"values":{"temp":21.5}}`,
					`{"ts":1002,"values":{"temp":21.5004}}`, `{"ts":1003,"values":{"temp":22}}`}
				suppressed = 0
			}
			waitEntries(t, b, "D", len(want))
			e.stop()
			if got := entries(b, "D"); !reflect.DeepEqual(got, want) {
				t.Fatalf("telemetry\n got %v\nwant %v", got, want)
			}
			if n := e.gw.Counters().ValuesSuppressed.Load(); n != suppressed {
				t.Fatalf("values suppressed %d, want %d", n, suppressed)
			}
		})
	}
}

func TestReportStrategyPeriodic(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	e := startGW(t, b, envOpts{tb: `"reportStrategy":{"type":"ON_REPORT_PERIOD","reportPeriod":60000},`})
	e.sendData(t, tel("D", 1000, "temp", 1))      // a key's first value goes at once
	e.sendData(t, tel("D", 2000, "temp", 5))      // cached
	e.sendData(t, tel("D", 3000, "temp", 6))      // cached, replaces 5
	d := tel("D", 3000, "hum", 40)                // another key: first value
	d.AddAttribute("fw", connector.String("1.0")) // attributes follow the strategy too
	e.sendData(t, d)
	waitEntries(t, b, "D", 2)
	e.gw.TickReports(e.clock.Now().Add(30 * time.Second)) // nothing due
	e.clock.Advance(60 * time.Second)
	e.gw.TickReports(e.clock.Now())
	// One period at a time, so that each period's attributes go in their own message.
	waitEntries(t, b, "D", 3)
	b.WaitCount("v1/gateway/attributes", func(ms []brokertest.Msg) bool { return len(ms) >= 2 }, 5*time.Second)
	e.clock.Advance(60 * time.Second)
	e.gw.TickReports(e.clock.Now())
	want := []string{
		`{"ts":1000,"values":{"temp":1}}`,
		`{"ts":3000,"values":{"hum":40}}`,
		// each period: the latest value of every key, with its own ts
		`{"ts":3000,"values":{"hum":40,"temp":6}}`,
		`{"ts":3000,"values":{"hum":40,"temp":6}}`,
	}
	waitEntries(t, b, "D", len(want))
	b.WaitCount("v1/gateway/attributes", func(ms []brokertest.Msg) bool { return len(ms) >= 3 }, 5*time.Second)
	e.stop()
	if got := entries(b, "D"); !reflect.DeepEqual(got, want) {
		t.Fatalf("telemetry\n got %v\nwant %v", got, want)
	}
	if got, want := payloads(b, "v1/gateway/attributes"), []string{`{"D":{"fw":"1.0"}}`, `{"D":{"fw":"1.0"}}`, `{"D":{"fw":"1.0"}}`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("attributes\n got %v\nwant %v", got, want)
	}
	c := e.gw.Counters()
	if c.ValuesSuppressed.Load() != 2 || c.ValuesResent.Load() != 6 {
		t.Fatalf("suppressed %d resent %d, want 2 and 6", c.ValuesSuppressed.Load(), c.ValuesResent.Load())
	}
}

func TestGatewayRPCs(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	e := startGW(t, b, envOpts{})
	e.sendData(t, tel("D", 1000, "temp", 1))
	waitEntries(t, b, "D", 1)

	restarted := make(chan struct{})
	restore := gateway.SetRestartHook(func() error { close(restarted); return nil })
	defer restore()

	for i, tt := range []struct{ req, want string }{
		{`{"method":"gateway_ping","params":{}}`, `{"result":"pong","success":true}`},
		{`{"method":"gateway_version"}`, `{"result":"test","success":true}`},
		{`{"method":"gateway_devices"}`, `{"result":{"D":"` + e.name + `"},"success":true}`},
		{`{"method":"gateway_restart","params":{"delay":0}}`, `{"result":"restarting in 0s","success":true}`},
		// "<connector type>_<method>" goes to the connectors of that type, without
		// a device; the first reply answers.
		{`{"method":"testconn_scan","params":{"bus":1}}`, `{"result":"scan-done"}`},
		{`{"method":"nope"}`, `{"error":"Method nope not found","success":false}`},
		{`{"method":"other_thing"}`, `{"error":"Method other_thing not found","success":false}`},
	} {
		if got := gatewayRPC(t, b, 100+i, tt.req); got != tt.want {
			t.Errorf("%s\n got %s\nwant %s", tt.req, got, tt.want)
		}
	}
	select {
	case <-restarted:
	case <-time.After(3 * time.Second):
		t.Fatal("gateway_restart did not call the restart hook")
	}
	e.tc.mu.Lock()
	var scan connector.RPCRequest
	for _, r := range e.tc.rpcs {
		if r.Method == "scan" {
			scan = r
		}
	}
	e.tc.mu.Unlock()
	if scan.Device != "" || scan.ID != 104 || fmt.Sprint(scan.Params) != "map[bus:1]" {
		t.Fatalf("connector-type RPC reached the connector as %+v", scan)
	}

	// gateway_stats carries the statistics message's keys and counts.
	var st struct {
		Result  map[string]any `json:"result"`
		Success bool           `json:"success"`
	}
	must(t, json.Unmarshal([]byte(gatewayRPC(t, b, 200, `{"method":"gateway_stats"}`)), &st))
	if !st.Success || st.Result["messagesReceived"] != float64(1) || st.Result["devices"] != float64(1) {
		t.Fatalf("gateway_stats %v", st)
	}
	// 8 RPCs so far: the stats request itself is counted before its reply.
	if st.Result["rpcs"] != float64(8) {
		t.Fatalf("gateway_stats rpcs %v, want 8", st.Result["rpcs"])
	}
}

// statsKeys are the keys of every statistics message (one connector named tc).
func statsKeys(connectorKey string) []string {
	k := []string{"attributeRequests", "cpuPercent", "cpuSeconds", "devices", "devicesInactive",
		"droppedDownlink", "droppedExpired", "droppedFiltered", "droppedInvalid", "droppedStorageFull",
		"eventsProduced", "eventsSent", "goroutines", "heapBytes", "inactivityDisconnects",
		"memoryRssBytes", "messagesReceived", "messagesSent", "publishRetries", "rateLimitWaits", "reconnects",
		"recordsSent", "rpcReplies", "rpcs", "storageDepth", "valuesReceived", "valuesResent",
		"valuesSent", "valuesSuppressed", connectorKey + "EventsProduced", connectorKey + "ValuesProduced"}
	sort.Strings(k)
	return k
}

func TestStatisticsMessage(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	e := startGW(t, b, envOpts{tb: `"statistics":{"enable":true,"statsSendPeriodInSeconds":1},`})
	for i := range 3 {
		e.sendData(t, tel("D", int64(1000+i), "temp", i, "hum", 50))
	}
	if err := e.gw.SendToStorage(e.name, "", &connector.ConvertedData{}); err == nil {
		t.Fatal("data without a device name accepted")
	}
	waitEntries(t, b, "D", 3)
	ck := strings.ToLower(e.name)
	var last map[string]any
	ok := b.WaitCount("v1/devices/me/telemetry", func(ms []brokertest.Msg) bool {
		for _, m := range ms {
			var s map[string]any
			if json.Unmarshal(m.Payload, &s) == nil && s["recordsSent"] == float64(4) {
				last = s
				return true
			}
		}
		return false
	}, 5*time.Second)
	if !ok {
		t.Fatalf("no statistics message after the load: %v", payloads(b, "v1/devices/me/telemetry"))
	}
	var keys []string
	for k := range last {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if want := statsKeys(ck); !reflect.DeepEqual(keys, want) {
		t.Fatalf("statistics keys\n got %v\nwant %v", keys, want)
	}
	for k, want := range map[string]float64{
		"eventsProduced": 3, "messagesReceived": 3, "valuesReceived": 6, "valuesSent": 6, "rpcs": 0,
		"droppedInvalid": 1, "devices": 1, "storageDepth": 0,
		ck + "EventsProduced": 3, ck + "ValuesProduced": 6,
	} {
		if last[k] != want {
			t.Errorf("%s = %v, want %v", k, last[k], want)
		}
	}
	if last["memoryRssBytes"].(float64) <= 0 || last["cpuSeconds"].(float64) <= 0 {
		t.Errorf("process figures missing: rss %v cpu %v", last["memoryRssBytes"], last["cpuSeconds"])
	}
	// gateway_stats answers with the same keys.
	var st struct {
		Result map[string]any `json:"result"`
	}
	must(t, json.Unmarshal([]byte(gatewayRPC(t, b, 77, `{"method":"gateway_stats"}`)), &st))
	keys = keys[:0]
	for k := range st.Result {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if want := statsKeys(ck); !reflect.DeepEqual(keys, want) {
		t.Fatalf("gateway_stats keys\n got %v\nwant %v", keys, want)
	}
}

func TestRegistrySurvivesRestart(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	e := startGW(t, b, envOpts{})
	e.sendData(t, tel("D", 1000, "temp", 1))
	waitEntries(t, b, "D", 1)
	e.stop()
	raw, err := os.ReadFile(filepath.Join(e.dir, "connected_devices.json"))
	must(t, err)
	id := e.cfg.Connectors[0].ID
	want := fmt.Sprintf("{\n  \"D\": {\n    \"connectorId\": %q,\n    \"connectorName\": %q,\n    \"deviceType\": \"thermo\",\n    \"renaming\": null\n  }\n}", id, e.name)
	if string(raw) != want {
		t.Fatalf("connected_devices.json\n got %s\nwant %s", raw, want)
	}
	connects := len(b.Messages("v1/gateway/connect"))

	// A second gateway on the same folder announces D without new data, and routes
	// RPCs for it to its connector.
	e2 := startGW(t, b, envOpts{dir: e.dir})
	ok := b.WaitCount("v1/gateway/connect", func(ms []brokertest.Msg) bool { return len(ms) > connects }, 5*time.Second)
	if !ok {
		t.Fatal("the saved device was not announced by the second gateway")
	}
	if got := string(b.Messages("v1/gateway/connect")[connects].Payload); got != `{"device":"D","type":"thermo"}` {
		t.Fatalf("connect %s", got)
	}
	b.Publish("v1/gateway/rpc", []byte(`{"device":"D","data":{"id":31,"method":"get","params":null}}`))
	r, ok := b.WaitFor("v1/gateway/rpc", func(m brokertest.Msg) bool { return strings.Contains(string(m.Payload), `"id":31`) }, 5*time.Second)
	if !ok || string(r.Payload) != `{"device":"D","id":31,"data":{"result":"get-done"}}` {
		t.Fatalf("rpc to a saved device: %q", r.Payload)
	}
	if len(entries(b, "D")) != 1 {
		t.Fatal("the second gateway sent data it did not receive")
	}
	e2.stop()
}

func TestDelDeviceForgetsTheDevice(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	e := startGW(t, b, envOpts{})
	e.sendData(t, tel("D", 1000, "temp", 1))
	e.sendData(t, tel("E", 1000, "temp", 2))
	waitEntries(t, b, "E", 1)
	e.gw.DelDevice("D")
	if _, ok := b.WaitFor("v1/gateway/disconnect", nil, 5*time.Second); !ok {
		t.Fatal("no disconnect")
	}
	if got := payloads(b, "v1/gateway/disconnect"); !reflect.DeepEqual(got, []string{`{"device":"D"}`}) {
		t.Fatalf("disconnects %v", got)
	}
	b.Publish("v1/gateway/rpc", []byte(`{"device":"D","data":{"id":5,"method":"m","params":null}}`))
	r, ok := b.WaitFor("v1/gateway/rpc", func(m brokertest.Msg) bool { return strings.Contains(string(m.Payload), `"id":5`) }, 5*time.Second)
	if !ok || string(r.Payload) != `{"device":"D","id":5,"data":{"error":"Device D not found","success":false}}` {
		t.Fatalf("rpc to a deleted device: %q", r.Payload)
	}
	e.stop()
	raw, err := os.ReadFile(filepath.Join(e.dir, "connected_devices.json"))
	must(t, err)
	if strings.Contains(string(raw), `"D"`) || !strings.Contains(string(raw), `"E"`) {
		t.Fatalf("connected_devices.json after DelDevice(D):\n%s", raw)
	}
}

func TestRenamingFromThePlatform(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	e := startGW(t, b, envOpts{})
	e.sendData(t, tel("D", 1000, "temp", 1))
	waitEntries(t, b, "D", 1)

	// ThingsBoard renames a device with a one-way RPC to the gateway device.
	if got := gatewayRPC(t, b, 7, `{"id":7,"method":"gateway_device_renamed","params":{"D":"D-new"}}`); got != `{"success":true}` {
		t.Fatalf("rename reply %s", got)
	}
	// The platform addresses the new name; the connector gets its own name, and
	// the reply goes back under the new name.
	b.Publish("v1/gateway/rpc", []byte(`{"device":"D-new","data":{"id":9,"method":"m","params":null}}`))
	r, ok := b.WaitFor("v1/gateway/rpc", func(m brokertest.Msg) bool { return strings.Contains(string(m.Payload), `"id":9`) }, 5*time.Second)
	if !ok || string(r.Payload) != `{"device":"D-new","id":9,"data":{"result":"m-done"}}` {
		t.Fatalf("rpc to the new name: %q", r.Payload)
	}
	e.tc.mu.Lock()
	dev := e.tc.rpcs[len(e.tc.rpcs)-1].Device
	e.tc.mu.Unlock()
	if dev != "D" {
		t.Fatalf("the connector got the RPC for %q, want its own name D", dev)
	}
	b.Publish("v1/gateway/attributes", []byte(`{"device":"D-new","data":{"mode":"eco"}}`))
	waitUntil(t, func() bool { e.tc.mu.Lock(); defer e.tc.mu.Unlock(); return len(e.tc.attr) == 1 })
	e.tc.mu.Lock()
	upd := e.tc.attr[0]
	e.tc.mu.Unlock()
	if upd.Device != "D" || upd.Data["mode"] != "eco" {
		t.Fatalf("attribute update %+v", upd)
	}
	// The old name is gone on the platform.
	b.Publish("v1/gateway/rpc", []byte(`{"device":"D","data":{"id":10,"method":"m","params":null}}`))
	r, ok = b.WaitFor("v1/gateway/rpc", func(m brokertest.Msg) bool { return strings.Contains(string(m.Payload), `"id":10`) }, 5*time.Second)
	if !ok || string(r.Payload) != `{"device":"D","id":10,"data":{"error":"Device D not found","success":false}}` {
		t.Fatalf("rpc to the old name: %q", r.Payload)
	}
	// Data from the connector under the old name goes out under the new one.
	e.sendData(t, tel("D", 2000, "temp", 2))
	if got := waitEntries(t, b, "D-new", 1); got[0] != `{"ts":2000,"values":{"temp":2}}` {
		t.Fatalf("renamed telemetry %v", got)
	}
	if got := payloads(b, "v1/gateway/connect"); !reflect.DeepEqual(got, []string{`{"device":"D","type":"thermo"}`, `{"device":"D-new","type":"thermo"}`}) {
		t.Fatalf("connects %v", got)
	}
	if got := gatewayRPC(t, b, 11, `{"method":"gateway_devices"}`); got != `{"result":{"D-new":"`+e.name+`"},"success":true}` {
		t.Fatalf("gateway_devices %s", got)
	}
	e.stop()
	raw, err := os.ReadFile(filepath.Join(e.dir, "connected_devices.json"))
	must(t, err)
	if !strings.Contains(string(raw), `"renaming": "D-new"`) {
		t.Fatalf("connected_devices.json does not keep the rename:\n%s", raw)
	}

	// Deletion on the platform: the gateway forgets the device.
	e2 := startGW(t, b, envOpts{dir: e.dir})
	if got := gatewayRPC(t, b, 12, `{"method":"gateway_device_deleted","params":"D-new"}`); got != `{"success":true}` {
		t.Fatalf("delete reply %s", got)
	}
	if got := gatewayRPC(t, b, 13, `{"method":"gateway_devices"}`); got != `{"result":{},"success":true}` {
		t.Fatalf("gateway_devices after the delete %s", got)
	}
	e2.stop()
	raw, err = os.ReadFile(filepath.Join(e.dir, "connected_devices.json"))
	must(t, err)
	if string(raw) != "{}" {
		t.Fatalf("connected_devices.json after the delete: %s", raw)
	}
}

func TestRenamingDisabled(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	e := startGW(t, b, envOpts{tb: `"handleDeviceRenaming":false,`})
	e.sendData(t, tel("D", 1000, "temp", 1))
	waitEntries(t, b, "D", 1)
	if got := gatewayRPC(t, b, 7, `{"method":"gateway_device_renamed","params":{"D":"D-new"}}`); got != `{"error":"handleDeviceRenaming is off","success":false}` {
		t.Fatalf("rename reply %s", got)
	}
	e.sendData(t, tel("D", 2000, "temp", 2))
	waitEntries(t, b, "D", 2)
}

func TestDeviceFiltering(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	name := "TC-" + t.Name()
	filter := fmt.Sprintf(`{"deny":{%q:["Bad.*"]},"allow":{%q:["Good.*","Bad.*"]}}`, name, name)
	e := startGW(t, b, envOpts{
		tb:    `"deviceFiltering":{"enable":true,"filterFile":"list.json"},`,
		files: map[string]string{"list.json": filter},
	})
	e.sendData(t, tel("Bad 1", 1000, "temp", 1))
	e.sendData(t, tel("Other", 1000, "temp", 1))
	e.sendData(t, tel("Bad 1", 1001, "temp", 1))
	e.sendData(t, tel("Good 1", 1000, "temp", 2))
	waitEntries(t, b, "Good 1", 1)
	e.stop()
	if got := payloads(b, "v1/gateway/connect"); !reflect.DeepEqual(got, []string{`{"device":"Good 1","type":"thermo"}`}) {
		t.Fatalf("connects %v", got)
	}
	if n := len(b.Messages("v1/gateway/telemetry")); n != 1 {
		t.Fatalf("%d telemetry messages, want only Good 1's", n)
	}
	if n := e.gw.Counters().DroppedFiltered.Load(); n != 3 {
		t.Fatalf("dropped by the filter %d, want 3", n)
	}
}

func TestInactivity(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	// The check period is long: the test drives the checks with the fake clock.
	e := startGW(t, b, envOpts{tb: `"checkingDeviceActivity":{"checkDeviceInactivity":true,"inactivityTimeoutSeconds":10,"inactivityCheckPeriodSeconds":3600},`})
	e.sendData(t, tel("D", 1000, "temp", 1))
	e.sendData(t, tel("E", 1000, "temp", 1))
	waitEntries(t, b, "E", 1)
	e.clock.Advance(6 * time.Second)
	e.sendData(t, tel("E", 2000, "temp", 2))
	e.clock.Advance(5 * time.Second)
	if got := e.gw.CheckInactivity(e.clock.Now()); !reflect.DeepEqual(got, []string{"D"}) {
		t.Fatalf("inactive %v, want [D]", got)
	}
	if _, ok := b.WaitFor("v1/gateway/disconnect", nil, 5*time.Second); !ok {
		t.Fatal("no disconnect for the silent device")
	}
	// No flapping: a device already disconnected is not reported again.
	e.clock.Advance(30 * time.Second)
	if got := e.gw.CheckInactivity(e.clock.Now()); !reflect.DeepEqual(got, []string{"E"}) {
		t.Fatalf("second check %v, want [E]", got)
	}
	b.WaitCount("v1/gateway/disconnect", func(ms []brokertest.Msg) bool { return len(ms) == 2 }, 5*time.Second)
	if got := e.gw.CheckInactivity(e.clock.Now().Add(time.Hour)); len(got) != 0 {
		t.Fatalf("third check %v, want none", got)
	}
	// An inactive device stays routable.
	b.Publish("v1/gateway/rpc", []byte(`{"device":"D","data":{"id":3,"method":"m","params":null}}`))
	r, ok := b.WaitFor("v1/gateway/rpc", func(m brokertest.Msg) bool { return strings.Contains(string(m.Payload), `"id":3`) }, 5*time.Second)
	if !ok || string(r.Payload) != `{"device":"D","id":3,"data":{"result":"m-done"}}` {
		t.Fatalf("rpc to an inactive device: %q", r.Payload)
	}
	// Its next data connects it again, once, before the data.
	e.sendData(t, tel("D", 5000, "temp", 5))
	e.sendData(t, tel("D", 5001, "temp", 6))
	waitEntries(t, b, "D", 3)
	e.stop()
	var seq []string
	for _, m := range b.Messages("") {
		if strings.HasPrefix(m.Topic, "v1/gateway/") && m.Topic != "v1/gateway/rpc" && strings.Contains(string(m.Payload), `"D"`) {
			seq = append(seq, strings.TrimPrefix(m.Topic, "v1/gateway/"))
		}
	}
	want := []string{"connect", "telemetry", "disconnect", "connect", "telemetry"}
	if len(seq) > 0 && seq[len(seq)-1] == "telemetry" && len(seq) == len(want)+1 {
		seq = seq[:len(want)] // the two last entries may go in two messages
	}
	if !reflect.DeepEqual(seq, want) {
		t.Fatalf("messages for D %v, want %v", seq, want)
	}
	if got := payloads(b, "v1/gateway/disconnect"); !reflect.DeepEqual(got, []string{`{"device":"D"}`, `{"device":"E"}`}) {
		t.Fatalf("disconnects %v", got)
	}
}

// A connector asks for attributes by type-asserting its Gateway.
func TestAttributeRequestsAndSharedSync(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	e := startGW(t, b, envOpts{tb: `"syncDevicesSharedAttributesOnConnect":true,`})
	// The platform side: answer every request until muted.
	stop := make(chan struct{})
	var mute atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	answered := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ms := b.Messages("v1/gateway/attributes/request")
			if mute.Load() {
				ms = ms[:answered]
			}
			for _, m := range ms[answered:] {
				var req struct {
					ID   int      `json:"id"`
					Key  string   `json:"key"`
					Keys []string `json:"keys"`
				}
				if json.Unmarshal(m.Payload, &req) != nil {
					continue
				}
				var resp string
				switch {
				case req.Key != "":
					resp = fmt.Sprintf(`{"id":%d,"device":"D","value":42}`, req.ID)
				case len(req.Keys) == 0:
					resp = fmt.Sprintf(`{"id":%d,"device":"D","values":{"mode":"auto","limit":7}}`, req.ID)
				default:
					resp = fmt.Sprintf(`{"id":%d,"device":"D","values":{"a":1}}`, req.ID)
				}
				b.Publish("v1/gateway/attributes/response", []byte(resp))
			}
			answered = len(ms)
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// The device's first data triggers the sync of its shared attributes.
	e.sendData(t, tel("D", 1000, "temp", 1))
	waitUntil(t, func() bool { e.tc.mu.Lock(); defer e.tc.mu.Unlock(); return len(e.tc.attr) == 1 })
	e.tc.mu.Lock()
	upd := e.tc.attr[0]
	e.tc.mu.Unlock()
	if upd.Device != "D" || fmt.Sprint(upd.Data) != "map[limit:7 mode:auto]" {
		t.Fatalf("synced shared attributes %+v", upd)
	}
	if got := payloads(b, "v1/gateway/attributes/request")[0]; got != `{"id":1,"device":"D","client":false,"keys":[]}` {
		t.Fatalf("sync request %s", got)
	}

	var gw any = e.gw
	r, ok := gw.(connector.AttributeRequester)
	if !ok {
		t.Fatal("the gateway does not implement connector.AttributeRequester")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := r.RequestAttributes(ctx, "D", true, []string{"x"})
	must(t, err)
	if fmt.Sprint(v) != "map[x:42]" {
		t.Fatalf("one key: %v", v)
	}
	v, err = r.RequestAttributes(ctx, "D", false, []string{"a", "b"})
	must(t, err)
	if fmt.Sprint(v) != "map[a:1]" {
		t.Fatalf("two keys: %v", v)
	}
	reqs := payloads(b, "v1/gateway/attributes/request")
	if want := []string{`{"id":1,"device":"D","client":false,"keys":[]}`, `{"id":2,"device":"D","client":true,"key":"x"}`,
		`{"id":3,"device":"D","client":false,"keys":["a","b"]}`}; !reflect.DeepEqual(reqs, want) {
		t.Fatalf("requests\n got %v\nwant %v", reqs, want)
	}
	// No answer: the context bounds the wait.
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	mute.Store(true)
	if _, err := r.RequestAttributes(short, "D", false, []string{"z"}); err == nil || !strings.Contains(err.Error(), "no response") {
		t.Fatalf("unanswered request: %v", err)
	}
}

// TestReconnectAnnouncesActiveDevicesOnly: after the platform link comes back, the
// gateway announces the devices it knows except the inactive ones (no flapping).
func TestReconnectAnnouncesActiveDevicesOnly(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	e := startGW(t, b, envOpts{tb: `"checkingDeviceActivity":{"checkDeviceInactivity":true,"inactivityTimeoutSeconds":10,"inactivityCheckPeriodSeconds":3600},`})
	e.sendData(t, tel("D", 1000, "temp", 1))
	e.clock.Advance(6 * time.Second)
	e.sendData(t, tel("E", 1000, "temp", 1))
	waitEntries(t, b, "E", 1)
	e.clock.Advance(5 * time.Second)
	if got := e.gw.CheckInactivity(e.clock.Now()); !reflect.DeepEqual(got, []string{"D"}) {
		t.Fatalf("inactive %v, want [D]", got)
	}
	if _, ok := b.WaitFor("v1/gateway/disconnect", nil, 5*time.Second); !ok {
		t.Fatal("no disconnect")
	}
	before := len(b.Messages("v1/gateway/connect"))
	b.Stop()
	b.Restart()
	if !b.WaitCount("v1/gateway/connect", func(ms []brokertest.Msg) bool { return len(ms) > before }, 10*time.Second) {
		t.Fatal("no device announced after the reconnect")
	}
	// The announcements are published together, before any data: send some and
	// wait for it, so that every announcement is in.
	e.sendData(t, tel("E", 2000, "temp", 2))
	waitEntries(t, b, "E", 2)
	if got := payloads(b, "v1/gateway/connect")[before:]; !reflect.DeepEqual(got, []string{`{"device":"E","type":"thermo"}`}) {
		t.Fatalf("announced after the reconnect: %v", got)
	}
}

// delConn is a test connector that, like the serial connector, removes its devices
// from the gateway when it closes.
type delConn struct {
	*testConn
	devices []string
}

func init() {
	connector.Register("delconn", "TestConnector", func(gw connector.Gateway, cfg connector.Config) (connector.Connector, error) {
		tc := &testConn{gw: gw, cfg: cfg}
		c := &delConn{testConn: tc, devices: []string{"S"}}
		connsMu.Lock()
		conns[cfg.Name] = tc
		connsMu.Unlock()
		return c, nil
	})
}

func (c *delConn) Open(ctx context.Context) error {
	if err := c.testConn.Open(ctx); err != nil {
		return err
	}
	for _, d := range c.devices {
		c.gw.AddDevice(d, "sensor", c)
	}
	return nil
}

func (c *delConn) Close() error {
	for _, d := range c.devices {
		c.gw.DelDevice(d)
	}
	return c.testConn.Close()
}

// TestDevicesKeptWhenTheGatewayStops: a connector that removes its devices as it
// closes, because the gateway stops, leaves them in connected_devices.json.
func TestDevicesKeptWhenTheGatewayStops(t *testing.T) {
	b := brokertest.Start(t, "TOKEN")
	e := startGW(t, b, envOpts{typ: "delconn"})
	if _, ok := b.WaitFor("v1/gateway/connect", nil, 5*time.Second); !ok {
		t.Fatal("AddDevice did not connect the device")
	}
	e.stop()
	if got := payloads(b, "v1/gateway/disconnect"); !reflect.DeepEqual(got, []string{`{"device":"S"}`}) {
		t.Fatalf("disconnects at stop %v", got)
	}
	raw, err := os.ReadFile(filepath.Join(e.dir, "connected_devices.json"))
	must(t, err)
	if !strings.Contains(string(raw), `"S": {`) || !strings.Contains(string(raw), `"deviceType": "sensor"`) {
		t.Fatalf("connected_devices.json after the stop:\n%s", raw)
	}
}
