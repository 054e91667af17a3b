package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iotgw/iotgw/tbmqtt"
)

// cpuSample is the process CPU time at a moment, for the CPU percentage.
type cpuSample struct {
	at  time.Time
	cpu time.Duration
}

// processCPU returns the user and system CPU time of the process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processRSS returns the resident set size in bytes (/proc/self/statm), 0 where
// there is no /proc.
func processRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// cpuPercent returns the CPU the process used since the previous call, in percent
// of one core, and its total CPU time in seconds.
func (g *Gateway) cpuPercent() (percent, total float64) {
	now, cpu := time.Now(), processCPU()
	g.cpuMu.Lock()
	last := g.cpuLast
	g.cpuLast = cpuSample{at: now, cpu: cpu}
	g.cpuMu.Unlock()
	if !last.at.IsZero() {
		if wall := now.Sub(last.at); wall > 0 {
			percent = math.Round(float64(cpu-last.cpu)/float64(wall)*10000) / 100
		}
	}
	return percent, math.Round(cpu.Seconds()*1000) / 1000
}

// connectorStatsKey is the Python gateway's per-connector statistics prefix: the
// connector name in lower case without spaces.
func connectorStatsKey(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, " ", ""))
}

// StatsSnapshot returns the gateway's statistics as a JSON-friendly map: what the
// statistics telemetry and the gateway_stats RPC carry.
func (g *Gateway) StatsSnapshot() map[string]any {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := g.store.Stats()
	g.mu.RLock()
	ndev, inactive := len(g.devices), 0
	for _, d := range g.devices {
		if d.inactive {
			inactive++
		}
	}
	g.mu.RUnlock()
	cpu, cpuTotal := g.cpuPercent()
	s := &g.stats
	m := map[string]any{
		// the Python gateway's names
		"eventsProduced": s.MessagesReceived.Load(),
		"eventsSent":     s.MessagesSent.Load(),
		// iotgw's
		"messagesReceived":      s.MessagesReceived.Load(),
		"valuesReceived":        s.ValuesReceived.Load(),
		"messagesSent":          s.MessagesSent.Load(),
		"valuesSent":            s.ValuesSent.Load(),
		"rateLimitWaits":        s.RateLimitWaits.Load(),
		"recordsSent":           s.RecordsSent.Load(),
		"droppedInvalid":        s.DroppedInvalid.Load(),
		"droppedFiltered":       s.DroppedFiltered.Load(),
		"droppedDownlink":       s.DroppedDownlink.Load(),
		"droppedStorageFull":    st.Dropped,
		"droppedExpired":        st.Expired,
		"valuesSuppressed":      s.ValuesSuppressed.Load(),
		"valuesResent":          s.ValuesResent.Load(),
		"storageDepth":          g.store.Len(),
		"rpcs":                  s.RPCs.Load(),
		"rpcReplies":            s.RPCReplies.Load(),
		"attributeRequests":     s.AttrRequests.Load(),
		"publishRetries":        s.PublishFailures.Load(),
		"reconnects":            g.mqtt.Reconnects(),
		"devices":               ndev,
		"devicesInactive":       inactive,
		"inactivityDisconnects": s.Disconnects.Load(),
		"goroutines":            runtime.NumGoroutine(),
		"heapBytes":             ms.HeapAlloc,
		"memoryRssBytes":        processRSS(),
		"cpuPercent":            cpu,
		"cpuSeconds":            cpuTotal,
	}
	for _, sl := range g.sortedSlots() {
		k := connectorStatsKey(sl.entry.Name)
		m[k+"EventsProduced"] = sl.msgs.Load()
		m[k+"ValuesProduced"] = sl.values.Load()
	}
	return m
}

// statsLoop publishes the statistics as the gateway's own telemetry every period
// while the platform is connected.
func (g *Gateway) statsLoop(ctx context.Context, period time.Duration) {
	if period <= 0 {
		period = 60 * time.Second
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !g.mqtt.Connected() {
			continue
		}
		if err := g.sendStats(ctx); err != nil {
			g.log.Debug("statistics not sent", "err", err)
		}
	}
}

// sendStats publishes one statistics message on v1/devices/me/telemetry and waits
// for its ack, within one period at most (a stop cancels the wait).
func (g *Gateway) sendStats(ctx context.Context) error {
	b, err := json.Marshal(g.StatsSnapshot())
	if err != nil {
		return fmt.Errorf("statistics: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, replyTimeout)
	defer cancel()
	if err := g.mqtt.Publish(tbmqtt.TopicDeviceTelemetry, byte(g.cfg.Thingsboard.QoS), b).Wait(ctx); err != nil {
		return fmt.Errorf("statistics: %w", err)
	}
	return nil
}
