package gateway

import (
	"context"
	"encoding/json"
	"time"

	"github.com/iotgw/iotgw/ratelimit"
	"github.com/iotgw/iotgw/tbmqtt"
)

// sessionLimits are the rate limits the platform announced in its getSessionLimits
// answer; ThingsBoard closes a session that exceeds them, so the publisher waits
// instead and the data stays in storage meanwhile.
type sessionLimits struct {
	messages, telemetryMessages, telemetryDataPoints *ratelimit.Limiter
}

// limitStrings is the "rateLimits"/"gatewayRateLimits" object of the answer.
type limitStrings struct {
	Messages            string `json:"messages"`
	TelemetryMessages   string `json:"telemetryMessages"`
	TelemetryDataPoints string `json:"telemetryDataPoints"`
}

// setSessionLimits parses the answer's limits: gatewayRateLimits cover what the
// gateway sends for its devices (v1/gateway/*); older servers send only rateLimits.
func (g *Gateway) setSessionLimits(gw, dev json.RawMessage) {
	raw := gw
	if len(raw) == 0 || string(raw) == "null" {
		raw = dev
	}
	var ls limitStrings
	if len(raw) == 0 || json.Unmarshal(raw, &ls) != nil {
		return
	}
	var sl sessionLimits
	var err error
	for _, x := range []struct {
		dst **ratelimit.Limiter
		s   string
	}{{&sl.messages, ls.Messages}, {&sl.telemetryMessages, ls.TelemetryMessages}, {&sl.telemetryDataPoints, ls.TelemetryDataPoints}} {
		if *x.dst, err = ratelimit.Parse(x.s); err != nil {
			g.log.Warn("ignoring a session rate limit the platform sent", "err", err)
			*x.dst = nil
		}
	}
	g.limits.Store(&sl)
	g.log.Info("platform rate limits", "messages", ls.Messages, "telemetryMessages", ls.TelemetryMessages, "telemetryDataPoints", ls.TelemetryDataPoints)
}

// throttle waits until the platform's rate limits allow one more message on topic
// carrying values datapoints. It returns ctx's error when ctx ends first.
func (g *Gateway) throttle(ctx context.Context, topic string, values int) error {
	sl := g.limits.Load()
	if sl == nil {
		return nil
	}
	now := time.Now()
	wait := sl.messages.Reserve(now, 1)
	if topic == tbmqtt.TopicTelemetry {
		wait = max(wait, sl.telemetryMessages.Reserve(now, 1), sl.telemetryDataPoints.Reserve(now, int64(values)))
	}
	if wait <= 0 {
		return nil
	}
	g.stats.RateLimitWaits.Add(1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
