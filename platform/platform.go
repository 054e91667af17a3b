// Package platform is a local stand-in for the ThingsBoard server, so that
// iotgw can be watched working on a laptop with no server: an embedded MQTT
// broker that understands the ThingsBoard gateway API, keeps devices,
// attributes and recent telemetry in memory, and serves a web page and a JSON
// HTTP API to watch them and to send attribute updates and RPCs to devices.
//
// It is a development tool, not a server: it keeps nothing on disk, binds to
// 127.0.0.1 by default, and answers only the parts of the API a gateway uses.
package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// MQTT topics of the ThingsBoard gateway and device APIs.
const (
	TopicConnect       = "v1/gateway/connect"
	TopicDisconnect    = "v1/gateway/disconnect"
	TopicTelemetry     = "v1/gateway/telemetry"
	TopicAttributes    = "v1/gateway/attributes"
	TopicAttrRequest   = "v1/gateway/attributes/request"
	TopicAttrResponse  = "v1/gateway/attributes/response"
	TopicRPC           = "v1/gateway/rpc"
	TopicMeTelemetry   = "v1/devices/me/telemetry"
	TopicMeAttributes  = "v1/devices/me/attributes"
	TopicMeRPCRequest  = "v1/devices/me/rpc/request/"
	TopicMeRPCResponse = "v1/devices/me/rpc/response/"
)

// Defaults of Options.
const (
	DefaultMQTTAddr = "127.0.0.1:1883"
	DefaultHTTPAddr = "127.0.0.1:8080"
	DefaultHistory  = 1000
	// DefaultRPCTimeout is how long POST /api/devices/{name}/rpc waits for the reply.
	DefaultRPCTimeout = 10 * time.Second
)

// SessionLimits is the platform's answer to the gateway's getSessionLimits
// RPC, in the shape ThingsBoard uses: rate limits are "count:seconds" pairs,
// comma separated. The emulator's limits are generous, so that they never
// slow a benchmark, but real, so that a gateway's parsing of them is exercised.
var SessionLimits = map[string]any{
	"maxPayloadSize":      65536,
	"maxInflightMessages": 100,
	"rateLimits": map[string]string{
		"messages":            "20000:1,600000:60",
		"telemetryMessages":   "10000:1,300000:60",
		"telemetryDataPoints": "100000:1,3000000:60",
	},
	"gatewayRateLimits": map[string]string{
		"messages":            "20000:1,600000:60",
		"telemetryMessages":   "10000:1,300000:60",
		"telemetryDataPoints": "100000:1,3000000:60",
	},
}

// Options configures a Platform.
type Options struct {
	// MQTTAddr is the broker's address (default DefaultMQTTAddr); port 0 picks one.
	MQTTAddr string
	// HTTPAddr is the web page's and API's address (default DefaultHTTPAddr).
	HTTPAddr string
	// Tokens are the access tokens (MQTT user names) accepted; empty accepts any.
	Tokens []string
	// History is how many values are kept per telemetry key (default DefaultHistory).
	History int
	// Logger receives the platform's logs; nil discards them.
	Logger *slog.Logger
}

// Platform is the emulated ThingsBoard server. Create it with New, start it
// with Start, stop it with Close.
type Platform struct {
	o   Options
	log *slog.Logger

	broker  *mqtt.Server
	httpSrv *http.Server
	httpLn  net.Listener
	done    chan struct{} // closed by Close: ends SSE streams and the ctx watcher
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	devices  map[string]*device
	gateways map[string]bool          // MQTT client id → connected
	rpcID    int                      // last RPC id sent
	waiters  map[rpcKey]chan RPCReply // RPCs waiting for their reply
	subs     map[chan Event]struct{}  // SSE subscribers
	dropped  int64                    // events dropped for slow subscribers

	messages, values, rpcs, replies atomic.Int64 // counters for Stats
}

// Stats are the platform's counters since Start.
type Stats struct {
	// Messages is the number of MQTT messages received from gateways.
	Messages int64 `json:"messages"`
	// Values is the number of telemetry values stored.
	Values int64 `json:"values"`
	// Devices is the number of devices known, and Connected those connected now.
	Devices   int `json:"devices"`
	Connected int `json:"connected"`
	// RPCs is the number of RPCs sent to gateways, Replies the replies received.
	RPCs    int64 `json:"rpcs"`
	Replies int64 `json:"replies"`
	// EventsDropped counts server-sent events lost by web pages too slow to read them.
	EventsDropped int64 `json:"eventsDropped"`
}

// Stats returns the platform's counters.
func (p *Platform) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Messages: p.messages.Load(), Values: p.values.Load(), Devices: len(p.devices),
		RPCs: p.rpcs.Load(), Replies: p.replies.Load(), EventsDropped: p.dropped}
	for _, d := range p.devices {
		if d.connected {
			s.Connected++
		}
	}
	return s
}

type rpcKey struct {
	device string
	id     int
}

// New checks o and makes a Platform; nothing listens before Start.
func New(o Options) (*Platform, error) {
	if o.MQTTAddr == "" {
		o.MQTTAddr = DefaultMQTTAddr
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = DefaultHTTPAddr
	}
	if o.History == 0 {
		o.History = DefaultHistory
	}
	if o.History < 0 {
		return nil, fmt.Errorf("platform: history %d: expected > 0", o.History)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Platform{
		o:        o,
		log:      o.Logger,
		done:     make(chan struct{}),
		devices:  map[string]*device{},
		gateways: map[string]bool{},
		waiters:  map[rpcKey]chan RPCReply{},
		subs:     map[chan Event]struct{}{},
	}
	return p, nil
}

// Start starts the MQTT broker and the HTTP server and returns when both are
// listening. The platform stops when ctx is done or Close is called; it
// starts once.
func (p *Platform) Start(ctx context.Context) error {
	if p.broker != nil {
		return errors.New("platform: already started")
	}
	select {
	case <-p.done:
		return errors.New("platform: closed")
	default:
	}
	// mochi logs every client at Info; keep its warnings and errors only.
	broker := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(minLevel{slog.LevelWarn, p.log.With("component", "broker").Handler()}),
	})
	if err := broker.AddHook(&hook{p: p}, nil); err != nil {
		return fmt.Errorf("platform: broker hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: p.o.MQTTAddr})
	if err := broker.AddListener(tcp); err != nil {
		return fmt.Errorf("platform: mqtt listen on %s: %w", p.o.MQTTAddr, err)
	}
	ln, err := net.Listen("tcp", p.o.HTTPAddr)
	if err != nil {
		_ = broker.Close()
		return fmt.Errorf("platform: http listen on %s: %w", p.o.HTTPAddr, err)
	}
	// Only a started platform has a broker: Close and the downlink calls rely
	// on it. It is set before Serve so that the hook's goroutines see it.
	p.broker, p.httpLn = broker, ln
	if err := broker.Serve(); err != nil {
		p.broker, p.httpLn = nil, nil
		_ = ln.Close()
		_ = broker.Close()
		return fmt.Errorf("platform: mqtt serve: %w", err)
	}
	p.httpSrv = &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		if err := p.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("http server stopped", "err", err)
		}
	}()
	go func() {
		defer p.wg.Done()
		select {
		case <-ctx.Done():
			p.stop()
		case <-p.done:
		}
	}()
	p.log.Info("platform emulator listening", "mqtt", p.MQTTAddr(), "http", "http://"+p.HTTPAddr())
	return nil
}

// MQTTAddr is the address the broker listens on.
func (p *Platform) MQTTAddr() string {
	if p.broker == nil {
		return p.o.MQTTAddr
	}
	if l, ok := p.broker.Listeners.Get("tcp"); ok {
		return l.Address()
	}
	return p.o.MQTTAddr
}

// HTTPAddr is the address the web page and the API listen on.
func (p *Platform) HTTPAddr() string {
	if p.httpLn != nil {
		return p.httpLn.Addr().String()
	}
	return p.o.HTTPAddr
}

// Close stops the HTTP server and the broker, and waits for their goroutines.
// It is safe to call more than once.
func (p *Platform) Close() error {
	err := p.stop()
	p.wg.Wait()
	return err
}

// stop stops the servers without waiting for the platform's goroutines, so
// that one of them may call it.
func (p *Platform) stop() error {
	p.closeOnce.Do(func() {
		close(p.done)
		if p.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := p.httpSrv.Shutdown(ctx); err != nil {
				p.closeErr = fmt.Errorf("platform: http shutdown: %w", err)
			}
		}
		if p.broker != nil {
			if err := p.broker.Close(); err != nil && p.closeErr == nil {
				p.closeErr = fmt.Errorf("platform: broker close: %w", err)
			}
		}
	})
	return p.closeErr
}

// Devices lists the known devices, sorted by name.
func (p *Platform) Devices() []Device {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Device, 0, len(p.devices))
	for _, d := range p.devices {
		out = append(out, d.view())
	}
	slices.SortFunc(out, func(a, b Device) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Telemetry returns up to limit recent values of key (every key when key is
// empty) of device, oldest first; ok is false for an unknown device.
func (p *Platform) Telemetry(deviceName, key string, limit int) (map[string][]Point, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.devices[deviceName]
	if !ok {
		return nil, false
	}
	out := map[string][]Point{}
	for _, k := range d.keys() {
		if key == "" || key == k {
			out[k] = d.telemetry[k].last(limit)
		}
	}
	return out, true
}

// Attributes returns the attributes of device; ok is false for an unknown device.
func (p *Platform) Attributes(deviceName string) (Attributes, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.devices[deviceName]
	if !ok {
		return Attributes{}, false
	}
	return d.attributes(), true
}

// ErrUnknownDevice is returned for a device the platform has never heard of.
var ErrUnknownDevice = errors.New("unknown device")

// UpdateAttributes stores data as shared attributes of device and pushes them
// to the gateway on v1/gateway/attributes.
func (p *Platform) UpdateAttributes(deviceName string, data map[string]json.RawMessage) error {
	p.mu.Lock()
	d, ok := p.devices[deviceName]
	if ok {
		for k, v := range data {
			d.shared[k] = v
		}
	}
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("attribute update for %q: %w", deviceName, ErrUnknownDevice)
	}
	payload, err := json.Marshal(map[string]any{"device": deviceName, "data": data})
	if err != nil {
		return fmt.Errorf("attribute update for %q: %w", deviceName, err)
	}
	if err := p.publish(TopicAttributes, payload); err != nil {
		return fmt.Errorf("attribute update for %q: publish: %w", deviceName, err)
	}
	p.emit(Event{Type: "attributes", Device: deviceName, Data: mustJSON(map[string]any{"scope": "shared", "data": data})})
	return nil
}

// RPCReply is a device's answer to an RPC.
type RPCReply struct {
	// ID is the RPC id the platform gave the request.
	ID int `json:"id"`
	// Device is the device that answered.
	Device string `json:"device"`
	// Data is the reply's "data" as the gateway sent it.
	Data json.RawMessage `json:"data"`
}

// ErrRPCTimeout is returned by RPC when no reply came in time.
var ErrRPCTimeout = errors.New("timeout waiting for the RPC reply")

// RPC sends method(params) to device on v1/gateway/rpc and waits up to
// timeout for the gateway's reply. params may be nil.
func (p *Platform) RPC(ctx context.Context, deviceName, method string, params json.RawMessage, timeout time.Duration) (RPCReply, error) {
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	ch := make(chan RPCReply, 1)
	p.mu.Lock()
	if _, ok := p.devices[deviceName]; !ok {
		p.mu.Unlock()
		return RPCReply{}, fmt.Errorf("rpc to %q: %w", deviceName, ErrUnknownDevice)
	}
	p.rpcID++
	id := p.rpcID
	key := rpcKey{deviceName, id}
	p.waiters[key] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiters, key)
		p.mu.Unlock()
	}()

	req := map[string]any{"id": id, "method": method, "params": params}
	payload, err := json.Marshal(map[string]any{"device": deviceName, "data": req})
	if err != nil {
		return RPCReply{}, fmt.Errorf("rpc %s to %q: %w", method, deviceName, err)
	}
	p.emit(Event{Type: "rpc", Device: deviceName, Data: mustJSON(req)})
	if err := p.publish(TopicRPC, payload); err != nil {
		return RPCReply{}, fmt.Errorf("rpc %s to %q: publish: %w", method, deviceName, err)
	}
	p.rpcs.Add(1)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r, nil
	case <-t.C:
		return RPCReply{ID: id, Device: deviceName}, fmt.Errorf("rpc %s (id %d) to %q after %v: %w", method, id, deviceName, timeout, ErrRPCTimeout)
	case <-ctx.Done():
		return RPCReply{ID: id, Device: deviceName}, fmt.Errorf("rpc %s (id %d) to %q: %w", method, id, deviceName, ctx.Err())
	case <-p.done:
		return RPCReply{ID: id, Device: deviceName}, fmt.Errorf("rpc %s (id %d) to %q: platform closed", method, id, deviceName)
	}
}

// errNotStarted is returned by downlink calls before Start.
var errNotStarted = errors.New("platform not started")

// publish sends a downlink message with QoS 1 from the broker's inline client.
func (p *Platform) publish(topic string, payload []byte) error {
	if p.broker == nil {
		return errNotStarted
	}
	return p.broker.Publish(topic, payload, false, 1)
}

// Event is one change pushed to the web page over server-sent events.
type Event struct {
	// Type is "device", "telemetry", "attributes", "rpc" or "rpc_reply".
	Type   string          `json:"type"`
	Device string          `json:"device"`
	Data   json.RawMessage `json:"data"`
}

// subscribe returns a channel of events; it is bounded: a subscriber that
// does not keep up loses events (counted), the broker never waits for it.
func (p *Platform) subscribe() (chan Event, func()) {
	ch := make(chan Event, 1024)
	p.mu.Lock()
	p.subs[ch] = struct{}{}
	p.mu.Unlock()
	return ch, func() {
		p.mu.Lock()
		delete(p.subs, ch)
		p.mu.Unlock()
	}
}

func (p *Platform) emit(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.emitLocked(e)
}

func (p *Platform) emitLocked(e Event) {
	for ch := range p.subs {
		select {
		case ch <- e:
		default:
			p.dropped++
		}
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Only values built here from decoded JSON reach this: they always encode.
		return json.RawMessage(`null`)
	}
	return b
}

// minLevel drops records below a level before they reach h.
type minLevel struct {
	level slog.Level
	h     slog.Handler
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.level, m.h.WithAttrs(a)}
}
func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{m.level, m.h.WithGroup(g)} }

// hook is the broker hook: it checks tokens and sees every publish.
type hook struct {
	mqtt.HookBase
	p *Platform
}

func (h *hook) ID() string { return "iotgw-platform" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish,
		mqtt.OnSessionEstablished, mqtt.OnDisconnect}, []byte{b})
}

// OnConnectAuthenticate accepts a client whose user name is a known access
// token, or any client when no tokens are configured.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if len(h.p.o.Tokens) == 0 {
		return true
	}
	ok := slices.Contains(h.p.o.Tokens, string(pk.Connect.Username))
	if !ok {
		h.p.log.Warn("refused MQTT client: unknown access token", "client", cl.ID, "remote", cl.Net.Remote)
	}
	return ok
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool { return true }

func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.p.gatewayState(cl.ID, true)
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if cl.Net.Inline {
		return
	}
	h.p.gatewayState(cl.ID, false)
}

// OnPublish sees a client's message before the broker acknowledges it: when
// a gateway has its PUBACK, the platform has stored the data.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !cl.Net.Inline { // the inline client's messages are the platform's own downlink
		h.p.handle(cl.ID, pk.TopicName, pk.Payload)
	}
	return pk, nil
}
