package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/iotgw/iotgw/connector"
	"github.com/iotgw/iotgw/tbmqtt"
)

const (
	deviceQueueLen = 64               // downlink requests waiting per device
	rpcWaitLimit   = 60 * time.Second // how long one RPC holds its device's queue
	replyTimeout   = 10 * time.Second // how long a reply waits for the platform link
)

type replyKey struct {
	device string
	id     int
}

// subscribe registers the downlink handlers; the client (re)subscribes on every
// connect. Handlers run on the client's callback goroutine and only hand work off.
func (g *Gateway) subscribe() {
	g.mqtt.Subscribe(tbmqtt.TopicAttributes, 1, g.onAttributes)
	g.mqtt.Subscribe(tbmqtt.TopicRPC, 1, g.onRPC)
	g.mqtt.Subscribe(tbmqtt.TopicDeviceRPCRequest+"+", 1, g.onGatewayRPC)
	g.mqtt.Subscribe(tbmqtt.TopicDeviceRPCResponse+"+", 1, g.onGatewayRPCResponse)
	g.mqtt.Subscribe(tbmqtt.TopicAttributesResponse, 1, g.onAttributesResponse)
	g.mqtt.OnConnect(g.onConnect)
}

// downlink is the shape of both downlink messages; uplink messages that a plain
// broker echoes back lack it and are ignored.
type downlink struct {
	Device string          `json:"device"`
	Data   json.RawMessage `json:"data"`
}

func decodeDownlink(payload []byte) (downlink, bool) {
	var m downlink
	if err := json.Unmarshal(payload, &m); err != nil || m.Device == "" {
		return m, false
	}
	d := bytes.TrimSpace(m.Data)
	if len(d) == 0 || d[0] != '{' {
		return m, false
	}
	return m, true
}

func decodeUseNumber(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func (g *Gateway) onAttributes(_ string, payload []byte) {
	m, ok := decodeDownlink(payload)
	if !ok {
		g.log.Debug("ignoring a message on the attributes topic without the downlink shape")
		return
	}
	var data map[string]any
	if err := decodeUseNumber(m.Data, &data); err != nil {
		g.log.Debug("ignoring an attribute update with bad data", "err", err)
		return
	}
	queued := g.enqueue(m.Device, func(c connector.Connector, name string) {
		// The connector gets the device under its own name (renamed devices).
		c.OnAttributesUpdate(connector.AttributeUpdate{Device: name, Data: data})
	})
	if !queued {
		g.log.Debug("attribute update for an unknown device", "device", m.Device)
	}
}

func (g *Gateway) onRPC(_ string, payload []byte) {
	m, ok := decodeDownlink(payload)
	if !ok {
		g.log.Debug("ignoring a message on the rpc topic without the downlink shape")
		return
	}
	var data struct {
		ID     *int            `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(m.Data, &data); err != nil || data.ID == nil || data.Method == "" {
		// Our own reply echoed by a plain broker: {"device","id","data":{...}}.
		g.log.Debug("ignoring a message on the rpc topic without id and method")
		return
	}
	req := connector.RPCRequest{Device: m.Device, ID: *data.ID, Method: data.Method}
	if len(data.Params) > 0 {
		var p any
		if err := decodeUseNumber(data.Params, &p); err == nil {
			req.Params = p
		}
	}
	g.stats.RPCs.Add(1)
	queued := g.enqueue(m.Device, func(c connector.Connector, name string) {
		req := req
		req.Device = name // the connector's own name; SendRPCReply maps it back
		key := replyKey{req.Device, req.ID}
		done := make(chan struct{})
		g.rpcReplies.Store(key, done)
		defer g.rpcReplies.Delete(key)
		c.ServerSideRPC(req)
		// Hold the device until the connector replied, so that RPCs to one device
		// run one at a time.
		select {
		case <-done:
		case <-time.After(rpcWaitLimit):
			g.log.Warn("connector did not reply to an RPC in time", "device", req.Device, "id", req.ID, "method", req.Method)
		}
	})
	if !queued {
		g.goWorker(func() { g.replyError(req.Device, req.ID, fmt.Sprintf("Device %s not found", req.Device)) })
	}
}

// enqueue hands job to the worker of the device the platform calls platformName
// (a renamed device by its new name); job gets the device's connector and the
// name the connector uses. It returns false when no open connector owns the
// device. A full queue drops the request (counted and logged).
func (g *Gateway) enqueue(platformName string, job func(c connector.Connector, device string)) bool {
	dev, ok := g.reg.Lookup(platformName)
	if !ok {
		return false
	}
	g.mu.RLock()
	d := g.devices[dev.Name]
	g.mu.RUnlock()
	if d == nil {
		return false
	}
	return g.enqueueDevice(d, dev.Name, job)
}

// enqueueDevice queues job on device d, named name by its connector.
func (g *Gateway) enqueueDevice(d *device, name string, job func(c connector.Connector, device string)) bool {
	g.mu.RLock()
	var c connector.Connector
	if d.conn != nil {
		c = d.conn.conn
	}
	g.mu.RUnlock()
	// A saved device's connector may not be open yet (or is being reloaded).
	// IsStopped is called without the gateway's lock: connectors call the gateway
	// while holding their own locks.
	if c == nil || c.IsStopped() {
		return false
	}
	g.mu.Lock()
	if g.stopping.Load() {
		g.mu.Unlock()
		g.log.Debug("downlink request while stopping, dropped", "device", name)
		return true
	}
	if d.queue == nil {
		d.queue = make(chan func(), deviceQueueLen)
	}
	select {
	case d.queue <- func() { job(c, name) }:
	default:
		g.mu.Unlock()
		g.stats.DroppedDownlink.Add(1)
		g.log.Error("downlink queue full, request dropped", "device", name)
		return true
	}
	if !d.running {
		d.running = true
		g.workers.Add(1)
		go g.work(d)
	}
	g.mu.Unlock()
	return true
}

// work serves one device's queue until it is empty.
func (g *Gateway) work(d *device) {
	defer g.workers.Done()
	for {
		g.mu.Lock()
		select {
		case job := <-d.queue:
			g.mu.Unlock()
			job()
		default:
			d.running = false
			g.mu.Unlock()
			return
		}
	}
}

// SendRPCReply implements connector.Gateway.
func (g *Gateway) SendRPCReply(device string, id int, content any) error {
	data, err := encodeReply(content)
	if err != nil {
		return fmt.Errorf("rpc reply to %s/%d: %w", device, id, err)
	}
	defer func() {
		// LoadAndDelete: two replies to one request must not both close the channel.
		if ch, ok := g.rpcReplies.LoadAndDelete(replyKey{device, id}); ok {
			close(ch.(chan struct{}))
		}
	}()
	g.stats.RPCReplies.Add(1)
	if device == "" {
		return g.sendGatewayReply(id, data)
	}
	return g.publishNow(tbmqtt.TopicRPC, tbmqtt.RPCReplyPayload(g.platformName(device), id, data))
}

// encodeReply makes the reply's "data" object: SPEC §3 wants an object, never a
// JSON string, so a non-object content is wrapped as {"result": content}.
func encodeReply(content any) ([]byte, error) {
	var b []byte
	switch c := content.(type) {
	case json.RawMessage:
		b = c
	case []byte:
		b = c
	default:
		var err error
		if b, err = json.Marshal(content); err != nil {
			return nil, err
		}
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' {
		wrapped, err := json.Marshal(map[string]json.RawMessage{"result": json.RawMessage(orNull(t))})
		if err != nil {
			return nil, err
		}
		return wrapped, nil
	}
	return t, nil
}

func orNull(b []byte) []byte {
	if len(b) == 0 || !json.Valid(b) {
		return []byte("null")
	}
	return b
}

func (g *Gateway) replyError(device string, id int, msg string) {
	data, _ := json.Marshal(map[string]any{"error": msg, "success": false})
	if err := g.publishNow(tbmqtt.TopicRPC, tbmqtt.RPCReplyPayload(device, id, data)); err != nil {
		g.log.Warn("rpc error reply not sent", "device", device, "id", id, "err", err)
	}
}

// publishNow sends a message outside storage (replies), waiting for the link for a
// while when it is down, and for the broker's ack.
func (g *Gateway) publishNow(topic string, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
	defer cancel()
	if err := g.mqtt.WaitConnected(ctx); err != nil {
		return fmt.Errorf("platform not connected: %w", err)
	}
	p := g.mqtt.Publish(topic, byte(g.cfg.Thingsboard.QoS), payload)
	return p.Wait(ctx)
}

// goWorker runs f on a goroutine the gateway waits for at stop. Once the gateway
// is stopping it runs nothing (the check and the Add share the lock that Run takes
// to set stopping, so no Add races the final Wait) and reports false.
func (g *Gateway) goWorker(f func()) bool {
	g.mu.Lock()
	if g.stopping.Load() {
		g.mu.Unlock()
		return false
	}
	g.workers.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.workers.Done()
		f()
	}()
	return true
}
