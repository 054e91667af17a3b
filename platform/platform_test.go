package platform

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// startPlatform starts a platform on loopback ports picked by the kernel and
// closes it when the test ends.
func startPlatform(t *testing.T, o Options) *Platform {
	t.Helper()
	o.MQTTAddr, o.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// gw is a test MQTT client acting as a gateway.
type gw struct {
	t   *testing.T
	c   paho.Client
	msg chan paho.Message
}

func connectGateway(t *testing.T, addr, token, id string) (*gw, error) {
	t.Helper()
	g := &gw{t: t, msg: make(chan paho.Message, 100)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(token).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second).SetOrderMatters(false)
	g.c = paho.NewClient(opts)
	tok := g.c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { g.c.Disconnect(100) })
	return g, nil
}

func (g *gw) subscribe(topics ...string) {
	g.t.Helper()
	for _, topic := range topics {
		tok := g.c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { g.msg <- m })
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			g.t.Fatalf("subscribe %s: %v", topic, tok.Error())
		}
	}
}

func (g *gw) publish(topic, payload string) {
	g.t.Helper()
	tok := g.c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		g.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func (g *gw) next() paho.Message {
	g.t.Helper()
	select {
	case m := <-g.msg:
		return m
	case <-time.After(5 * time.Second):
		g.t.Fatal("no MQTT message within 5 s")
		return nil
	}
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, strings.TrimSpace(string(b))
}

func TestTokens(t *testing.T) {
	p := startPlatform(t, Options{Tokens: []string{"A1_TEST_TOKEN"}})
	tests := []struct {
		token string
		ok    bool
	}{
		{"A1_TEST_TOKEN", true},
		{"wrong", false},
		{"", false},
	}
	for i, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			_, err := connectGateway(t, p.MQTTAddr(), tt.token, fmt.Sprintf("gw%d", i))
			if (err == nil) != tt.ok {
				t.Errorf("connect with token %q: err = %v, want ok = %v", tt.token, err, tt.ok)
			}
		})
	}

	open := startPlatform(t, Options{})
	if _, err := connectGateway(t, open.MQTTAddr(), "anything", "gw"); err != nil {
		t.Errorf("no tokens configured: any token must be accepted: %v", err)
	}
}

func TestUplinkVisibleInAPI(t *testing.T) {
	p := startPlatform(t, Options{History: 3})
	g, err := connectGateway(t, p.MQTTAddr(), "tok", "gw1")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + p.HTTPAddr()
	g.publish(TopicConnect, `{"device":"SerialDevice1","type":"thermo"}`)
	// Two values in one millisecond: both are kept.
	g.publish(TopicTelemetry, `{"SerialDevice1":[{"ts":1700000000000,"values":{"humidity":48}},{"ts":1700000000000,"values":{"humidity":49.5}}]}`)
	g.publish(TopicTelemetry, `{"SerialDevice1":{"ts":1700000000001,"values":{"humidity":50,"label":"x"}},"Other":[{"ts":5,"values":{"v":true}}]}`)
	g.publish(TopicTelemetry, `{"SerialDevice1":[{"ts":1700000000002,"values":{"humidity":51}}]}`)
	g.publish(TopicAttributes, `{"SerialDevice1":{"SerialNumber":"2430947595"}}`)

	tests := []struct{ path, want string }{
		{"/api/devices/SerialDevice1/telemetry?key=humidity",
			`{"humidity":[{"ts":1700000000000,"value":49.5},{"ts":1700000000001,"value":50},{"ts":1700000000002,"value":51}]}`},
		{"/api/devices/SerialDevice1/telemetry?key=humidity&limit=1", `{"humidity":[{"ts":1700000000002,"value":51}]}`},
		{"/api/devices/SerialDevice1/telemetry", `{"humidity":[{"ts":1700000000000,"value":49.5},{"ts":1700000000001,"value":50},{"ts":1700000000002,"value":51}],"label":[{"ts":1700000000001,"value":"x"}]}`},
		{"/api/devices/Other/telemetry", `{"v":[{"ts":5,"value":true}]}`},
		{"/api/devices/SerialDevice1/attributes", `{"client":{"SerialNumber":"2430947595"},"shared":{}}`},
	}
	for _, tt := range tests {
		status, body := httpDo(t, "GET", base+tt.path, "")
		if status != 200 || body != tt.want {
			t.Errorf("GET %s = %d %s\nwant 200 %s", tt.path, status, body, tt.want)
		}
	}

	var devs []Device
	_, body := httpDo(t, "GET", base+"/api/devices", "")
	if err := json.Unmarshal([]byte(body), &devs); err != nil {
		t.Fatal(err)
	}
	got := map[string]Device{}
	for _, d := range devs {
		got[d.Name] = d
	}
	if len(devs) != 3 {
		t.Errorf("devices = %s, want SerialDevice1, Other and the gateway gw1", body)
	}
	if d := got["SerialDevice1"]; !d.Connected || d.Type != "thermo" || d.Gateway != "gw1" ||
		string(d.Latest["humidity"].Value) != "51" || time.Since(d.LastSeen) > time.Minute {
		t.Errorf("SerialDevice1 = %+v", d)
	}
	if d := got["gw1"]; !d.Connected || d.Type != "gateway" {
		t.Errorf("gateway device = %+v", d)
	}

	g.publish(TopicDisconnect, `{"device":"SerialDevice1"}`)
	for _, d := range p.Devices() {
		if d.Name == "SerialDevice1" && d.Connected {
			t.Error("SerialDevice1 still connected after v1/gateway/disconnect")
		}
	}
	for _, path := range []string{"/api/devices/nope/telemetry", "/api/devices/nope/attributes"} {
		if status, _ := httpDo(t, "GET", base+path, ""); status != 404 {
			t.Errorf("GET %s = %d, want 404", path, status)
		}
	}
	if status, _ := httpDo(t, "GET", base+"/api/devices/Other/telemetry?limit=x", ""); status != 400 {
		t.Errorf("bad limit: status %d, want 400", status)
	}

	// When the gateway's session ends, its devices show disconnected.
	g.c.Disconnect(100)
	deadline := time.Now().Add(5 * time.Second)
	for {
		connected := 0
		for _, d := range p.Devices() {
			if d.Connected {
				connected++
			}
		}
		if connected == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("devices still connected after the gateway left: %+v", p.Devices())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRPCRoundTrip(t *testing.T) {
	p := startPlatform(t, Options{})
	g, err := connectGateway(t, p.MQTTAddr(), "tok", "gw1")
	if err != nil {
		t.Fatal(err)
	}
	g.subscribe(TopicRPC)
	g.publish(TopicConnect, `{"device":"D1"}`)
	base := "http://" + p.HTTPAddr()

	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		// Not httpDo: t.Fatal must not be called from this goroutine.
		res, err := http.Post(base+"/api/devices/D1/rpc", "application/json",
			strings.NewReader(`{"method":"setValue","params":25,"timeoutMs":5000}`))
		if err != nil {
			done <- result{0, err.Error()}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		done <- result{res.StatusCode, strings.TrimSpace(string(b))}
	}()
	m := g.next()
	if m.Topic() != TopicRPC || string(m.Payload()) != `{"data":{"id":1,"method":"setValue","params":25},"device":"D1"}` {
		t.Fatalf("gateway got %s %s", m.Topic(), m.Payload())
	}
	// The gateway answers on the same topic: the platform must take its reply,
	// not its own request echoed back, and ignore a stray reply.
	g.publish(TopicRPC, `{"device":"D1","id":99,"data":{"result":"stray"}}`)
	g.publish(TopicRPC, `{"device":"D1","id":1,"data":{"result":"ok:19"}}`)
	r := <-done
	if want := `{"id":1,"device":"D1","data":{"result":"ok:19"}}`; r.status != 200 || r.body != want {
		t.Errorf("POST rpc = %d %s, want 200 %s", r.status, r.body, want)
	}
	// The stray reply and the request itself came back to our subscription.
	for range 2 {
		g.next()
	}

	// Nobody answers: 504 with the id.
	status, body := httpDo(t, "POST", base+"/api/devices/D1/rpc", `{"method":"getValue","params":"abc","timeoutMs":200}`)
	if status != 504 || !strings.Contains(body, `"id":2`) || !strings.Contains(body, "timeout") {
		t.Errorf("unanswered rpc = %d %s, want 504 with id 2", status, body)
	}
	if m := g.next(); string(m.Payload()) != `{"data":{"id":2,"method":"getValue","params":"abc"},"device":"D1"}` {
		t.Errorf("gateway got %s", m.Payload())
	}

	tests := []struct {
		path, body string
		status     int
	}{
		{"/api/devices/nope/rpc", `{"method":"m"}`, 404},
		{"/api/devices/D1/rpc", `{"params":1}`, 400},
		{"/api/devices/D1/rpc", `{"method":"m","timeoutMs":-1}`, 400},
		{"/api/devices/D1/rpc", `not json`, 400},
	}
	for _, tt := range tests {
		if status, body := httpDo(t, "POST", base+tt.path, tt.body); status != tt.status {
			t.Errorf("POST %s %s = %d %s, want %d", tt.path, tt.body, status, body, tt.status)
		}
	}
}

func TestAttributeUpdateDownlink(t *testing.T) {
	p := startPlatform(t, Options{})
	g, err := connectGateway(t, p.MQTTAddr(), "tok", "gw1")
	if err != nil {
		t.Fatal(err)
	}
	g.subscribe(TopicAttributes, TopicAttrResponse)
	g.publish(TopicConnect, `{"device":"D1","type":"default"}`)
	base := "http://" + p.HTTPAddr()
	status, body := httpDo(t, "POST", base+"/api/devices/D1/attributes", `{"attr1":25}`)
	if status != 200 || body != `{"data":{"attr1":25},"device":"D1"}` {
		t.Errorf("POST attributes = %d %s", status, body)
	}
	if m := g.next(); m.Topic() != TopicAttributes || string(m.Payload()) != `{"data":{"attr1":25},"device":"D1"}` {
		t.Errorf("gateway got %s %s", m.Topic(), m.Payload())
	}
	// A plain broker would echo this shape back; here a client publishing it
	// must not turn "device" into a device.
	g.publish(TopicAttributes, `{"device":"D1","data":{"attr1":1}}`)
	g.next() // our own echo
	if _, ok := p.Attributes("device"); ok {
		t.Error(`a downlink-shaped message made a device named "device"`)
	}
	if status, body := httpDo(t, "GET", base+"/api/devices/D1/attributes", ""); body != `{"client":{},"shared":{"attr1":25}}` {
		t.Errorf("GET attributes = %d %s", status, body)
	}

	// Attribute requests are answered from the stored attributes.
	g.publish(TopicAttrRequest, `{"id":7,"device":"D1","client":false,"key":"attr1"}`)
	if m := g.next(); m.Topic() != TopicAttrResponse || string(m.Payload()) != `{"device":"D1","id":7,"value":25}` {
		t.Errorf("attribute response %s %s", m.Topic(), m.Payload())
	}
	g.publish(TopicAttrRequest, `{"id":8,"device":"D1","client":false,"keys":["attr1","missing"]}`)
	if m := g.next(); string(m.Payload()) != `{"device":"D1","id":8,"values":{"attr1":25}}` {
		t.Errorf("attribute response %s", m.Payload())
	}

	for _, tt := range []struct {
		path, body string
		status     int
	}{
		{"/api/devices/nope/attributes", `{"a":1}`, 404},
		{"/api/devices/D1/attributes", `{}`, 400},
		{"/api/devices/D1/attributes", `[1]`, 400},
	} {
		if status, body := httpDo(t, "POST", base+tt.path, tt.body); status != tt.status {
			t.Errorf("POST %s %s = %d %s, want %d", tt.path, tt.body, status, body, tt.status)
		}
	}
}

func TestSessionLimits(t *testing.T) {
	p := startPlatform(t, Options{})
	g, err := connectGateway(t, p.MQTTAddr(), "tok", "gw1")
	if err != nil {
		t.Fatal(err)
	}
	g.subscribe("v1/devices/me/rpc/response/+")
	g.publish("v1/devices/me/rpc/request/3", `{"method":"getSessionLimits","params":{}}`)
	m := g.next()
	want := `{"gatewayRateLimits":{"messages":"20000:1,600000:60","telemetryDataPoints":"100000:1,3000000:60","telemetryMessages":"10000:1,300000:60"},` +
		`"maxInflightMessages":100,"maxPayloadSize":65536,` +
		`"rateLimits":{"messages":"20000:1,600000:60","telemetryDataPoints":"100000:1,3000000:60","telemetryMessages":"10000:1,300000:60"}}`
	if m.Topic() != "v1/devices/me/rpc/response/3" || string(m.Payload()) != want {
		t.Errorf("got %s %s\nwant v1/devices/me/rpc/response/3 %s", m.Topic(), m.Payload(), want)
	}
	// The gateway's own telemetry goes to its own device.
	g.publish(TopicMeTelemetry, `{"eventsProduced":10}`)
	tel, ok := p.Telemetry("gw1", "eventsProduced", 10)
	if !ok || len(tel["eventsProduced"]) != 1 || string(tel["eventsProduced"][0].Value) != "10" {
		t.Errorf("gateway telemetry = %v %v", tel, ok)
	}
}

func TestEvents(t *testing.T) {
	p := startPlatform(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.HTTPAddr()+"/api/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	g, err := connectGateway(t, p.MQTTAddr(), "tok", "gw1")
	if err != nil {
		t.Fatal(err)
	}
	g.publish(TopicTelemetry, `{"D1":[{"ts":1,"values":{"t":20}}]}`)
	want := []string{
		`{"type":"device","device":"gw1"`,
		`{"type":"device","device":"D1"`,
		`{"type":"telemetry","device":"D1","data":{"ts":1,"values":{"t":20}}}`,
	}
	sc := bufio.NewScanner(res.Body)
	for _, w := range want {
		var line string
		for sc.Scan() {
			if line = sc.Text(); strings.HasPrefix(line, "data: ") {
				break
			}
		}
		if !strings.HasPrefix(line, "data: "+w) {
			t.Errorf("event %q, want prefix %q", line, "data: "+w)
		}
	}
}

func TestWebPageEmbedded(t *testing.T) {
	p := startPlatform(t, Options{})
	base := "http://" + p.HTTPAddr()
	for _, tt := range []struct{ path, contains string }{
		{"/", `<script src="app.js"></script>`},
		{"/app.js", `new EventSource("/api/events")`},
		{"/style.css", `.metric canvas`},
		{"/api/info", `"mqtt":"` + p.MQTTAddr() + `"`},
	} {
		status, body := httpDo(t, "GET", base+tt.path, "")
		if status != 200 || !strings.Contains(body, tt.contains) {
			t.Errorf("GET %s = %d, want 200 containing %q", tt.path, status, tt.contains)
		}
	}
	// Nothing on the page is fetched from elsewhere.
	for _, f := range []string{"web/index.html", "web/app.js", "web/style.css"} {
		b, _ := webFS.ReadFile(f)
		if bytes.Contains(b, []byte("http://")) || bytes.Contains(b, []byte("https://")) {
			t.Errorf("%s refers to an external URL", f)
		}
	}
}

func TestRing(t *testing.T) {
	r := newRing(3)
	if _, ok := r.latest(); ok || len(r.last(5)) != 0 {
		t.Fatal("empty ring has values")
	}
	for i := range 5 {
		r.add(Point{TS: int64(i)})
		want := []int64{}
		for j := max(0, i-2); j <= i; j++ {
			want = append(want, int64(j))
		}
		var got []int64
		for _, p := range r.last(10) {
			got = append(got, p.TS)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after %d adds: last = %v, want %v", i+1, got, want)
		}
		if l, _ := r.latest(); l.TS != int64(i) {
			t.Errorf("latest = %d, want %d", l.TS, i)
		}
	}
	if got := r.last(2); len(got) != 2 || got[0].TS != 3 || got[1].TS != 4 {
		t.Errorf("last(2) = %v", got)
	}
}

func TestShapes(t *testing.T) {
	tests := []struct {
		payload       string
		attrDown, rpc bool
	}{
		{`{"device":"D","data":{"a":1}}`, true, false},
		{`{"device":"D","data":{"id":1,"method":"m","params":{}}}`, true, true},
		{`{"device":"D","id":1,"data":{"result":1}}`, false, false},
		{`{"D":{"a":1}}`, false, false},
		{`{"device":{"data":1}}`, false, false},
		{`{"device":"D","data":{"a":1},"x":2}`, false, false},
		{`not json`, false, false},
	}
	for _, tt := range tests {
		if got := downlinkAttributes([]byte(tt.payload)); got != tt.attrDown {
			t.Errorf("downlinkAttributes(%s) = %v", tt.payload, got)
		}
		if got := downlinkRPC([]byte(tt.payload)); got != tt.rpc {
			t.Errorf("downlinkRPC(%s) = %v", tt.payload, got)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.MQTTAddr() != DefaultMQTTAddr || p.HTTPAddr() != DefaultHTTPAddr || p.o.History != DefaultHistory {
		t.Errorf("defaults: mqtt %s http %s history %d", p.MQTTAddr(), p.HTTPAddr(), p.o.History)
	}
	if _, err := New(Options{History: -1}); err == nil {
		t.Error("History -1 accepted")
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close before Start: %v", err)
	}
}

// BenchmarkTelemetryIngest measures the platform's handling of one gateway
// telemetry message with 10 entries of 2 values (what the broker hook does
// before it acknowledges the message).
func BenchmarkTelemetryIngest(b *testing.B) {
	p, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString(`{"SerialDevice1":[`)
	for i := range 10 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"ts":%d,"values":{"humidity":%d.5,"SerialNumber":"2430947595"}}`, 1700000000000+i, 40+i)
	}
	sb.WriteString(`]}`)
	payload := []byte(sb.String())
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		p.handle("gw", TopicTelemetry, payload)
	}
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "entries/s")
}

func TestStatsAndEscapedNames(t *testing.T) {
	p := startPlatform(t, Options{})
	g, err := connectGateway(t, p.MQTTAddr(), "tok", "gw1")
	if err != nil {
		t.Fatal(err)
	}
	g.subscribe(TopicRPC)
	name := "Room 1/Sensor ä"
	g.publish(TopicTelemetry, `{"Room 1/Sensor ä":[{"ts":1,"values":{"a":1,"b":2}}]}`)
	g.publish(TopicTelemetry, `{"Room 1/Sensor ä":{"c":3}}`)
	base := "http://" + p.HTTPAddr()
	path := "/api/devices/" + url.PathEscape(name) + "/telemetry?key=a" // as encodeURIComponent
	if status, body := httpDo(t, "GET", base+path, ""); status != 200 || body != `{"a":[{"ts":1,"value":1}]}` {
		t.Errorf("GET %s = %d %s", path, status, body)
	}
	go func() {
		m := <-g.msg
		var req struct {
			Data struct{ ID int } `json:"data"`
		}
		_ = json.Unmarshal(m.Payload(), &req)
		g.c.Publish(TopicRPC, 1, false, fmt.Sprintf(`{"device":%q,"id":%d,"data":{"ok":true}}`, name, req.Data.ID))
	}()
	if _, err := p.RPC(context.Background(), name, "m", nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	want := `{"messages":3,"values":3,"devices":2,"connected":2,"rpcs":1,"replies":1,"eventsDropped":0}`
	if status, body := httpDo(t, "GET", base+"/api/stats", ""); status != 200 || body != want {
		t.Errorf("GET /api/stats = %d %s, want %s", status, body, want)
	}
}

func TestAddressInUse(t *testing.T) {
	a := startPlatform(t, Options{})
	b, err := New(Options{MQTTAddr: a.MQTTAddr(), HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "mqtt listen on") {
		t.Errorf("Start on a used MQTT port: err = %v", err)
	}
	c, _ := New(Options{MQTTAddr: "127.0.0.1:0", HTTPAddr: a.HTTPAddr()})
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "http listen on") {
		t.Errorf("Start on a used HTTP port: err = %v", err)
	}
	// A platform that failed to start closes cleanly, more than once.
	for _, p := range []*Platform{b, c, c} {
		if err := p.Close(); err != nil {
			t.Errorf("Close after a failed Start: %v", err)
		}
	}
	if err := a.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Errorf("second Start: err = %v", err)
	}
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Start after Close: err = %v", err)
	}
}

func TestClientAttributeEventsOnlyOnChange(t *testing.T) {
	p := startPlatform(t, Options{})
	ch, cancel := p.subscribe()
	defer cancel()
	for _, payload := range []string{`{"D":{"a":1,"b":"x"}}`, `{"D":{"a":1,"b":"x"}}`, `{"D":{"a":2,"b":"x"}}`} {
		p.handle("gw", TopicAttributes, []byte(payload))
	}
	var got []string
	for len(ch) > 0 {
		if e := <-ch; e.Type == "attributes" {
			got = append(got, string(e.Data))
		}
	}
	want := []string{`{"data":{"a":1,"b":"x"},"scope":"client"}`, `{"data":{"a":2},"scope":"client"}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("attribute events = %v, want %v", got, want)
	}
	if a, _ := p.Attributes("D"); string(a.Client["a"]) != "2" {
		t.Errorf("a = %s, want 2", a.Client["a"])
	}
}

func TestStopsWithContext(t *testing.T) {
	p, err := New(Options{MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mqttAddr, httpAddr := p.MQTTAddr(), p.HTTPAddr()
	cancel()
	// The HTTP port closes without Close: the context stopped the platform.
	// (Only HTTP is probed meanwhile: mochi races when a client connects
	// during its Close.)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", httpAddr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still listening after ctx was cancelled", httpAddr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close after ctx: %v", err)
	}
	if c, err := net.DialTimeout("tcp", mqttAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("MQTT %s still listening", mqttAddr)
	}
}
