package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/iotgw/iotgw/connector"
	"github.com/iotgw/iotgw/tbmqtt"
)

// attrRequestTimeout bounds an attribute request whose context has no deadline
// (the Python gateway's 30 s).
const attrRequestTimeout = 30 * time.Second

var _ connector.AttributeRequester = (*Gateway)(nil)

// attrWait is one attribute request waiting for its response.
type attrWait struct {
	keys []string
	ch   chan map[string]any
}

// RequestAttributes implements connector.AttributeRequester. It publishes
// {"id":N,"device":"D","client":false,"key":"k"} for one key, or
// {"id":N,"device":"D","client":false,"keys":["a","b"]} otherwise, on
// v1/gateway/attributes/request (D is the device's platform name), and waits for the
// v1/gateway/attributes/response with the same id: {"id":N,"device":"D","value":v}
// or {"id":N,"device":"D","values":{"a":1}}. Without a deadline in ctx it waits
// 30 s at most.
func (g *Gateway) RequestAttributes(ctx context.Context, device string, client bool, keys []string) (map[string]any, error) {
	if device == "" {
		return nil, fmt.Errorf("attribute request: no device name")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, attrRequestTimeout)
		defer cancel()
	}
	if err := g.mqtt.WaitConnected(ctx); err != nil {
		return nil, fmt.Errorf("attribute request for %s: platform not connected: %w", device, err)
	}
	id := g.attrSeq.Add(1)
	w := &attrWait{keys: keys, ch: make(chan map[string]any, 1)}
	g.attrPending.Store(id, w)
	defer g.attrPending.Delete(id)
	payload, err := encodeAttrRequest(id, g.platformName(device), client, keys)
	if err != nil {
		return nil, fmt.Errorf("attribute request for %s: %w", device, err)
	}
	g.stats.AttrRequests.Add(1)
	if err := g.mqtt.Publish(tbmqtt.TopicAttributesRequest, byte(g.cfg.Thingsboard.QoS), payload).Wait(ctx); err != nil {
		return nil, fmt.Errorf("attribute request %d for %s: %w", id, device, err)
	}
	select {
	case v := <-w.ch:
		return v, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("attribute request %d for %s: no response: %w", id, device, ctx.Err())
	}
}

func encodeAttrRequest(id int64, device string, client bool, keys []string) ([]byte, error) {
	if len(keys) == 1 {
		return json.Marshal(struct {
			ID     int64  `json:"id"`
			Device string `json:"device"`
			Client bool   `json:"client"`
			Key    string `json:"key"`
		}{id, device, client, keys[0]})
	}
	if keys == nil {
		keys = []string{}
	}
	return json.Marshal(struct {
		ID     int64    `json:"id"`
		Device string   `json:"device"`
		Client bool     `json:"client"`
		Keys   []string `json:"keys"`
	}{id, device, client, keys})
}

// onAttributesResponse hands a response to the request waiting for its id.
func (g *Gateway) onAttributesResponse(_ string, payload []byte) {
	var m struct {
		ID     *int64          `json:"id"`
		Value  json.RawMessage `json:"value"`
		Values json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(payload, &m); err != nil || m.ID == nil {
		g.log.Debug("ignoring an attribute response without an id")
		return
	}
	v, ok := g.attrPending.Load(*m.ID)
	if !ok {
		g.log.Debug("attribute response for no waiting request", "id", *m.ID)
		return
	}
	w := v.(*attrWait)
	out := map[string]any{}
	switch {
	case len(m.Values) > 0:
		if err := decodeUseNumber(m.Values, &out); err != nil {
			g.log.Debug("attribute response with bad values", "id", *m.ID, "err", err)
		}
	case len(m.Value) > 0 && len(w.keys) == 1:
		var x any
		if err := decodeUseNumber(m.Value, &x); err == nil {
			out[w.keys[0]] = x
		}
	}
	select {
	case w.ch <- out:
	default:
	}
}
