package gateway

import (
	"time"

	"github.com/iotgw/iotgw/metrics"
	"github.com/iotgw/iotgw/ops"
)

// Health implements ops.Source: the platform link, storage depth and each
// connector's state.
func (g *Gateway) Health() ops.Health {
	h := ops.Health{PlatformConnected: g.mqtt.Connected(), StorageDepth: g.store.Len()}
	for _, s := range g.sortedSlots() {
		g.mu.RLock()
		c, e := s.conn, s.entry
		g.mu.RUnlock()
		h.Connectors = append(h.Connectors, ops.ConnectorHealth{
			Name: e.Name, Type: e.Type, Connected: c.IsConnected(), Stopped: c.IsStopped(),
		})
	}
	return h
}

// latencyBuckets are the publish latency histogram's upper bounds, in seconds.
var latencyBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func (g *Gateway) observeLatency(d time.Duration) { g.latency.ObserveDuration(d) }

// Metrics returns a registry with the gateway's metrics for /metrics.
func (g *Gateway) Metrics() *metrics.Registry {
	r := metrics.NewRegistry()
	s := &g.stats
	counter := func(name, help string, f func() uint64) metrics.Metric { return metrics.NewCounterFunc(name, help, f) }
	_ = r.Register(
		counter("iotgw_messages_received_total", "Converted messages (frames) received from connectors.", s.MessagesReceived.Load),
		counter("iotgw_values_received_total", "Datapoints received from connectors.", s.ValuesReceived.Load),
		counter("iotgw_messages_sent_total", "MQTT messages acknowledged by the platform.", s.MessagesSent.Load),
		counter("iotgw_values_sent_total", "Datapoints (telemetry values and attributes) acknowledged by the platform.", s.ValuesSent.Load),
		counter("iotgw_records_sent_total", "Storage records acknowledged by the platform.", s.RecordsSent.Load),
		counter("iotgw_dropped_invalid_total", "Data refused: no device name or a malformed record.", s.DroppedInvalid.Load),
		counter("iotgw_dropped_downlink_total", "Downlink requests dropped because a device queue was full.", s.DroppedDownlink.Load),
		counter("iotgw_dropped_storage_full_total", "Records dropped by storage size limits (oldest first).", func() uint64 { return g.store.Stats().Dropped }),
		counter("iotgw_dropped_expired_total", "Records dropped by the storage TTL.", func() uint64 { return g.store.Stats().Expired }),
		counter("iotgw_rpc_requests_total", "RPC requests routed to connectors or answered by the gateway.", s.RPCs.Load),
		counter("iotgw_publish_retries_total", "Batches sent again after the platform link dropped.", s.PublishFailures.Load),
		counter("iotgw_rate_limit_waits_total", "Publishes delayed to stay within the platform's rate limits.", s.RateLimitWaits.Load),
		counter("iotgw_reconnects_total", "Reconnections to the platform.", g.mqtt.Reconnects),
		counter("iotgw_dropped_filtered_total", "Messages of devices refused by device filtering.", s.DroppedFiltered.Load),
		counter("iotgw_values_suppressed_total", "Datapoints held back by a report strategy.", s.ValuesSuppressed.Load),
		counter("iotgw_values_resent_total", "Datapoints re-sent by a periodic report strategy.", s.ValuesResent.Load),
		counter("iotgw_inactivity_disconnects_total", "Disconnects sent for inactive devices.", s.Disconnects.Load),
		counter("iotgw_attribute_requests_total", "Attribute requests sent to the platform.", s.AttrRequests.Load),
		metrics.NewGaugeFunc("iotgw_devices", "Devices known to the gateway.", func() float64 {
			g.mu.RLock()
			defer g.mu.RUnlock()
			return float64(len(g.devices))
		}),
		metrics.NewGaugeFunc("iotgw_storage_depth", "Records waiting in storage.", func() float64 { return float64(g.store.Len()) }),
		metrics.NewGaugeFunc("iotgw_platform_connected", "1 while the platform session is up.", func() float64 {
			if g.mqtt.Connected() {
				return 1
			}
			return 0
		}),
		g.latency,
	)
	return r
}
