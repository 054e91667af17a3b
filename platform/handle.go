package platform

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// handle applies one message published by a gateway (never by the platform's
// own inline client) to the platform's state.
func (p *Platform) handle(client, topic string, payload []byte) {
	p.messages.Add(1)
	var err error
	switch {
	case topic == TopicConnect:
		err = p.onConnect(client, payload)
	case topic == TopicDisconnect:
		err = p.onDisconnect(payload)
	case topic == TopicTelemetry:
		err = p.onGatewayTelemetry(client, payload)
	case topic == TopicAttributes:
		if downlinkAttributes(payload) {
			p.log.Debug("ignoring a downlink-shaped attribute message", "client", client, "topic", topic)
			return
		}
		err = p.onGatewayAttributes(client, payload)
	case topic == TopicAttrRequest:
		err = p.onAttributeRequest(payload)
	case topic == TopicRPC:
		if downlinkRPC(payload) {
			p.log.Debug("ignoring a downlink-shaped RPC message", "client", client, "topic", topic)
			return
		}
		err = p.onRPCReply(payload)
	case topic == TopicMeTelemetry:
		var v json.RawMessage
		if err = json.Unmarshal(payload, &v); err == nil {
			err = p.addTelemetry(client, client, "gateway", v)
		}
	case topic == TopicMeAttributes:
		var attrs map[string]json.RawMessage
		if err = json.Unmarshal(payload, &attrs); err == nil {
			p.addClientAttributes(client, client, "gateway", attrs)
		}
	case strings.HasPrefix(topic, TopicMeRPCRequest):
		err = p.onGatewayRPC(topic[len(TopicMeRPCRequest):], payload)
	default:
		p.log.Debug("ignoring a message on a topic the platform does not handle", "client", client, "topic", topic)
		return
	}
	p.mu.Lock()
	if gw, ok := p.devices[client]; ok {
		gw.lastSeen = time.Now()
	}
	p.mu.Unlock()
	if err != nil {
		p.log.Warn("bad message from gateway", "client", client, "topic", topic, "err", err, "payload", string(payload))
	}
}

// downlinkAttributes reports whether payload has the shape the platform sends
// on v1/gateway/attributes ({"device":"D","data":{...}}): a plain broker echoes
// it back, and it is not the gateway's uplink ({"D":{...}}).
func downlinkAttributes(payload []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(payload, &m) != nil || len(m) != 2 {
		return false
	}
	return isString(m["device"]) && isObject(m["data"])
}

// downlinkRPC reports whether payload has the shape of an RPC request
// ({"device":"D","data":{"id":N,"method":"m",...}}) rather than a reply
// ({"device":"D","id":N,"data":{...}}).
func downlinkRPC(payload []byte) bool {
	var m struct {
		Device json.RawMessage `json:"device"`
		ID     json.RawMessage `json:"id"`
		Data   struct {
			Method json.RawMessage `json:"method"`
		} `json:"data"`
	}
	if json.Unmarshal(payload, &m) != nil {
		return false
	}
	return m.ID == nil && isString(m.Device) && m.Data.Method != nil
}

func isString(b json.RawMessage) bool { return len(b) > 0 && b[0] == '"' }
func isObject(b json.RawMessage) bool { return len(b) > 0 && b[0] == '{' }

// touch returns the device, creating it, marking it connected and seen now.
// It emits a device event when something other than lastSeen changed.
// Called with p.mu held.
func (p *Platform) touch(name, client, typ string) *device {
	d, ok := p.devices[name]
	changed := !ok
	if !ok {
		d = newDevice(name)
		p.devices[name] = d
	}
	if typ != "" && d.typ != typ {
		d.typ, changed = typ, true
	}
	if !d.connected {
		d.connected, changed = true, true
	}
	if client != "" && d.gateway != client {
		d.gateway, changed = client, true
	}
	d.lastSeen = time.Now()
	if changed {
		p.emitLocked(Event{Type: "device", Device: name, Data: mustJSON(d.view())})
	}
	return d
}

func (p *Platform) onConnect(client string, payload []byte) error {
	var m struct {
		Device string `json:"device"`
		Type   string `json:"type"`
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return err
	}
	if m.Device == "" {
		return errNoDevice
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	typ := m.Type
	if typ == "" {
		typ = "default"
	}
	p.touch(m.Device, client, typ)
	return nil
}

func (p *Platform) onDisconnect(payload []byte) error {
	var m struct {
		Device string `json:"device"`
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return err
	}
	if m.Device == "" {
		return errNoDevice
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.devices[m.Device]
	if !ok || !d.connected {
		return nil
	}
	d.connected = false
	p.emitLocked(Event{Type: "device", Device: d.name, Data: mustJSON(d.view())})
	return nil
}

// gatewayState records a gateway's MQTT session: the gateway shows as a
// device of type "gateway"; when it goes, so do its devices.
func (p *Platform) gatewayState(client string, connected bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gateways[client] = connected
	if connected {
		p.touch(client, client, "gateway")
		return
	}
	for _, d := range p.devices {
		if d.connected && (d.gateway == client || d.name == client) {
			d.connected = false
			p.emitLocked(Event{Type: "device", Device: d.name, Data: mustJSON(d.view())})
		}
	}
}

type jsonError string

func (e jsonError) Error() string { return string(e) }

const (
	errNoDevice   = jsonError(`no "device" name`)
	errBadEntries = jsonError("telemetry must be an object or a list of objects")
)

func (p *Platform) onGatewayTelemetry(client string, payload []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return err
	}
	for name, v := range m {
		if err := p.addTelemetry(name, client, "", v); err != nil {
			return err
		}
	}
	return nil
}

// addTelemetry stores entries in any of the shapes ThingsBoard accepts:
// {"k":v}, {"ts":T,"values":{...}}, or a list of them.
func (p *Platform) addTelemetry(name, client, typ string, raw json.RawMessage) error {
	var entries []json.RawMessage
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return err
		}
	} else {
		entries = []json.RawMessage{raw}
	}
	type entry struct {
		ts     int64
		values map[string]json.RawMessage
	}
	parsed := make([]entry, 0, len(entries))
	now := time.Now().UnixMilli()
	for _, e := range entries {
		var withTS struct {
			TS     json.Number                `json:"ts"`
			Values map[string]json.RawMessage `json:"values"`
		}
		if !isObject(bytes.TrimSpace(e)) || json.Unmarshal(e, &withTS) != nil {
			return errBadEntries
		}
		if withTS.Values != nil {
			ts := now
			if withTS.TS != "" {
				f, err := strconv.ParseFloat(string(withTS.TS), 64)
				if err != nil {
					return err
				}
				ts = int64(f)
			}
			parsed = append(parsed, entry{ts, withTS.Values})
			continue
		}
		var values map[string]json.RawMessage
		if err := json.Unmarshal(e, &values); err != nil {
			return err
		}
		parsed = append(parsed, entry{now, values})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.touch(name, client, typ)
	for _, e := range parsed {
		for k, v := range e.values {
			r, ok := d.telemetry[k]
			if !ok {
				r = newRing(p.o.History)
				d.telemetry[k] = r
			}
			r.add(Point{TS: e.ts, Value: v})
		}
		p.values.Add(int64(len(e.values)))
		if len(p.subs) > 0 {
			p.emitLocked(Event{Type: "telemetry", Device: name,
				Data: mustJSON(map[string]any{"ts": e.ts, "values": e.values})})
		}
	}
	return nil
}

func (p *Platform) onGatewayAttributes(client string, payload []byte) error {
	var m map[string]map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return err
	}
	for name, attrs := range m {
		p.addClientAttributes(name, client, "", attrs)
	}
	return nil
}

func (p *Platform) addClientAttributes(name, client, typ string, attrs map[string]json.RawMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.touch(name, client, typ)
	// Gateways resend unchanged attributes with every frame: only changes
	// make an event, so that the page's log shows what happened.
	var changed map[string]json.RawMessage
	for k, v := range attrs {
		if old, ok := d.client[k]; ok && bytes.Equal(old, v) {
			continue
		}
		d.client[k] = v
		if changed == nil {
			changed = map[string]json.RawMessage{}
		}
		changed[k] = v
	}
	if changed != nil {
		p.emitLocked(Event{Type: "attributes", Device: name,
			Data: mustJSON(map[string]any{"scope": "client", "data": changed})})
	}
}

// onAttributeRequest answers v1/gateway/attributes/request
// {"id":N,"device":"D","client":bool,"key":"k"} (or "keys":[...]) on
// v1/gateway/attributes/response with {"id":N,"device":"D","value":v} (or
// "values":{...}); a missing key is left out.
func (p *Platform) onAttributeRequest(payload []byte) error {
	var req struct {
		ID     json.RawMessage `json:"id"`
		Device string          `json:"device"`
		Client bool            `json:"client"`
		Key    string          `json:"key"`
		Keys   []string        `json:"keys"`
	}
	if err := json.Unmarshal(payload, &req); err != nil {
		return err
	}
	if req.Device == "" {
		return errNoDevice
	}
	resp := map[string]any{"id": req.ID, "device": req.Device}
	p.mu.Lock()
	var attrs map[string]json.RawMessage
	if d, ok := p.devices[req.Device]; ok {
		attrs = d.shared
		if req.Client {
			attrs = d.client
		}
	}
	if req.Keys != nil {
		values := map[string]json.RawMessage{}
		for _, k := range req.Keys {
			if v, ok := attrs[k]; ok {
				values[k] = v
			}
		}
		resp["values"] = values
	} else if v, ok := attrs[req.Key]; ok {
		resp["value"] = v
	}
	p.mu.Unlock()
	return p.publish(TopicAttrResponse, mustJSON(resp))
}

// onRPCReply hands a gateway's RPC reply {"device":"D","id":N,"data":{...}}
// to the waiting RPC call.
func (p *Platform) onRPCReply(payload []byte) error {
	var m struct {
		Device string          `json:"device"`
		ID     json.Number     `json:"id"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return err
	}
	id, err := strconv.Atoi(string(m.ID))
	if err != nil {
		return err
	}
	r := RPCReply{ID: id, Device: m.Device, Data: m.Data}
	p.replies.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.devices[m.Device]; ok {
		d.lastSeen = time.Now()
	}
	p.emitLocked(Event{Type: "rpc_reply", Device: m.Device, Data: mustJSON(r)})
	ch, ok := p.waiters[rpcKey{m.Device, id}]
	if !ok {
		p.log.Info("RPC reply nobody waits for (late or unknown id)", "device", m.Device, "id", id)
		return nil
	}
	delete(p.waiters, rpcKey{m.Device, id})
	ch <- r // buffered, one reply per waiter
	return nil
}

// onGatewayRPC answers the gateway's own RPCs to the platform; only
// getSessionLimits has an answer, as on ThingsBoard.
func (p *Platform) onGatewayRPC(id string, payload []byte) error {
	var req struct {
		Method string `json:"method"`
	}
	if err := json.Unmarshal(payload, &req); err != nil {
		return err
	}
	if req.Method != "getSessionLimits" {
		p.log.Debug("gateway RPC to the platform left unanswered", "method", req.Method, "id", id)
		return nil
	}
	return p.publish(TopicMeRPCResponse+id, mustJSON(SessionLimits))
}
