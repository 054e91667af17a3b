package gateway

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iotgw/iotgw/connector"
	"github.com/iotgw/iotgw/tbmqtt"
)

// restartHook re-executes the gateway (gateway_restart); tests replace it.
var restartHook = func() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, os.Environ())
}

// onConnect runs after every connect: announce the known devices (unless the
// publisher already did on this connection), ask for the session limits and publish
// the gateway's own attributes. Data flows before the limits answer.
func (g *Gateway) onConnect(ctx context.Context) {
	// The publisher announces the devices (and waits for the acks) before it sends
	// anything else on this connection; wake it in case it is idle.
	select {
	case g.connected <- struct{}{}:
	default:
	}
	id := g.rpcSeq.Add(1)
	req := []byte(`{"method":"getSessionLimits","params":{"timeout":5000}}`)
	g.mqtt.Publish(tbmqtt.TopicDeviceRPCRequest+strconv.FormatInt(id, 10), 1, req)

	attrs := map[string]any{"Version": g.opts.Version}
	var types []string
	for _, s := range g.sortedSlots() {
		attrs[s.entry.Name+"_type"] = s.entry.Type
		types = append(types, s.entry.Name+":"+s.entry.Type)
	}
	attrs["connectors"] = strings.Join(types, ",")
	b, _ := json.Marshal(attrs)
	g.mqtt.Publish(tbmqtt.TopicDeviceAttributes, byte(g.cfg.Thingsboard.QoS), b)
}

// onGatewayRPCResponse takes the answer to getSessionLimits.
func (g *Gateway) onGatewayRPCResponse(_ string, payload []byte) {
	var limits struct {
		MaxPayloadSize    int64           `json:"maxPayloadSize"`
		RateLimits        json.RawMessage `json:"rateLimits"`
		GatewayRateLimits json.RawMessage `json:"gatewayRateLimits"`
	}
	if err := json.Unmarshal(payload, &limits); err != nil {
		return
	}
	g.setSessionLimits(limits.GatewayRateLimits, limits.RateLimits)
	if limits.MaxPayloadSize > 0 {
		// Leave room for the topic and MQTT header.
		g.sessionMaxPayload.Store(max(limits.MaxPayloadSize-256, 256))
		g.log.Debug("session limits", "maxPayloadSize", limits.MaxPayloadSize)
	}
}

type gatewayRPC struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// onGatewayRPC answers the gateway's own RPCs on v1/devices/me/rpc/request/N.
func (g *Gateway) onGatewayRPC(topic string, payload []byte) {
	id := strings.TrimPrefix(topic, tbmqtt.TopicDeviceRPCRequest)
	var req gatewayRPC
	if err := json.Unmarshal(payload, &req); err != nil || req.Method == "" {
		g.log.Debug("ignoring a gateway RPC without a method", "topic", topic)
		return
	}
	if req.Method == "getSessionLimits" {
		// Our own request, echoed by a plain broker: not for us to answer.
		return
	}
	g.stats.RPCs.Add(1)
	reply := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(`{"error":"reply not encodable","success":false}`)
		}
		g.goWorker(func() {
			if err := g.publishNow(tbmqtt.TopicDeviceRPCResponse+id, b); err != nil {
				g.log.Warn("gateway rpc reply not sent", "method", req.Method, "err", err)
			}
		})
	}
	switch req.Method {
	case "gateway_ping", "ping":
		reply(map[string]any{"result": "pong", "success": true})
	case "gateway_version", "version":
		reply(map[string]any{"result": g.opts.Version, "success": true})
	case "gateway_devices", "devices":
		// {"<platform name>": "<connector name>"}, as the Python gateway answers.
		devs := map[string]string{}
		g.mu.RLock()
		for _, d := range g.devices {
			cname := ""
			if d.conn != nil {
				cname = d.conn.entry.Name
				if cname == "" && d.conn.conn != nil {
					cname = d.conn.conn.Name()
				}
			}
			devs[d.pname] = cname
		}
		g.mu.RUnlock()
		reply(map[string]any{"result": devs, "success": true})
	case "gateway_stats", "stats":
		reply(map[string]any{"result": g.StatsSnapshot(), "success": true})
	case "gateway_restart", "restart":
		var p struct {
			Delay float64 `json:"delay"` // seconds (ThingsBoard sends a number)
		}
		_ = json.Unmarshal(req.Params, &p)
		delay := time.Duration(p.Delay * float64(time.Second))
		reply(map[string]any{"success": true, "result": "restarting in " + delay.String()})
		// The wait ends with the gateway's life: a stop cancels the restart.
		go func() {
			select {
			case <-time.After(delay + 500*time.Millisecond): // let the reply leave
			case <-g.life.Done():
				return
			}
			g.log.Warn("restarting on the platform's request")
			if err := restartHook(); err != nil {
				g.log.Error("restart failed", "err", err)
			}
		}()
	case "gateway_device_renamed", "device_renamed":
		reply(g.rpcDeviceRenamed(req.Params))
	case "gateway_device_deleted", "device_deleted":
		reply(g.rpcDeviceDeleted(req.Params))
	default:
		if !g.connectorTypeRPC(id, req) {
			reply(map[string]any{"error": "Method " + req.Method + " not found", "success": false})
		}
	}
}

// connectorTypeRPC routes "<type>_<method>" to every connector of that type as an
// RPCRequest with an empty Device; the first reply (SendRPCReply with device "")
// answers the platform.
func (g *Gateway) connectorTypeRPC(id string, req gatewayRPC) bool {
	typ, method, ok := strings.Cut(req.Method, "_")
	if !ok {
		return false
	}
	var targets []connector.Connector
	for _, s := range g.sortedSlots() {
		if s.entry.Type == typ {
			targets = append(targets, s.conn)
		}
	}
	if len(targets) == 0 {
		return false
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return false
	}
	r := connector.RPCRequest{ID: n, Method: method}
	if len(req.Params) > 0 {
		var p any
		if decodeUseNumber(req.Params, &p) == nil {
			r.Params = p
		}
	}
	for _, c := range targets {
		g.goWorker(func() { c.ServerSideRPC(r) })
	}
	return true
}

// sendGatewayReply answers a connector-type RPC (device "").
func (g *Gateway) sendGatewayReply(id int, data []byte) error {
	// Several connectors of the type may answer: the first reply wins.
	if _, dup := g.gatewayReplied.LoadOrStore(id, struct{}{}); dup {
		return nil
	}
	time.AfterFunc(time.Minute, func() { g.gatewayReplied.Delete(id) })
	return g.publishNow(tbmqtt.TopicDeviceRPCResponse+strconv.Itoa(id), data)
}
