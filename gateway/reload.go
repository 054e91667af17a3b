package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/iotgw/iotgw/config"
)

// Reload re-reads every connector file. A connector whose file changed is stopped
// and started again with the new file; a file that no longer validates is rejected
// with the same errors as `iotgw check`, and the running connector keeps going.
// Storage and the platform session are untouched, so nothing queued is lost.
// It returns how many connectors were restarted.
func (g *Gateway) Reload(ctx context.Context) int {
	restarted := 0
	for _, s := range g.sortedSlots() {
		g.mu.RLock()
		entry := s.entry
		g.mu.RUnlock()
		if entry.Path == "" {
			continue
		}
		raw, err := config.LoadConnectorFile(entry.Path)
		if err != nil {
			g.log.Error("reload: connector file rejected, the running connector keeps its configuration",
				"connector", entry.Name, "err", err)
			continue
		}
		if bytes.Equal(raw, entry.Raw) {
			continue
		}
		next := entry
		next.Raw = raw
		var meta struct {
			LogLevel       string          `json:"logLevel"`
			ReportStrategy json.RawMessage `json:"reportStrategy"`
		}
		_ = json.Unmarshal(raw, &meta)
		if meta.LogLevel != "" {
			next.LogLevel = meta.LogLevel
		}
		// The connector-level report strategy follows the file too.
		next.ReportStrategy = nil
		var ns *slot
		if len(meta.ReportStrategy) > 0 {
			next.ReportStrategy, err = config.ParseReportStrategy("reportStrategy", meta.ReportStrategy)
			if err != nil {
				err = fmt.Errorf("%s: %w", entry.Path, err)
			}
		}
		if err == nil {
			ns, err = g.newConnector(next)
		}
		if err != nil {
			g.log.Error("reload: connector file rejected, the running connector keeps its configuration",
				"connector", entry.Name, "err", err)
			// Remember the rejected content so that the same mistake is reported once.
			g.mu.Lock()
			s.entry.Raw = raw
			g.mu.Unlock()
			continue
		}
		if err := s.conn.Close(); err != nil {
			g.log.Warn("reload: closing the old connector", "connector", entry.Name, "err", err)
		}
		g.mu.Lock()
		s.entry, s.conn = ns.entry, ns.conn
		g.mu.Unlock()
		if err := ns.conn.Open(ctx); err != nil {
			g.log.Error("reload: connector failed to open", "connector", entry.Name, "err", err)
			continue
		}
		restarted++
		g.log.Info("connector reloaded with its new configuration", "connector", entry.Name)
	}
	return restarted
}

// watchConfig reloads every checkConnectorsConfigurationInSeconds until ctx is done.
func (g *Gateway) watchConfig(ctx context.Context) {
	period := time.Duration(g.cfg.Thingsboard.CheckConnectorsConfig) * time.Second
	if period <= 0 {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.Reload(ctx)
		}
	}
}
