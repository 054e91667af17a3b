package gateway

import (
	"context"
	"time"
)

// Test hooks: drive the time-based behaviours with a fake clock.

// TickReports runs the report strategies' scheduler once at now.
func (g *Gateway) TickReports(now time.Time) {
	for _, d := range g.report.Tick(now) {
		g.emitResend(d)
	}
}

// CheckInactivity runs one inactivity check at now.
func (g *Gateway) CheckInactivity(now time.Time) []string { return g.activity.Check(now) }

// SendStats publishes one statistics message now.
func (g *Gateway) SendStats() error { return g.sendStats(context.Background()) }

// SetRestartHook replaces what gateway_restart runs; the returned func restores it.
func SetRestartHook(f func() error) (restore func()) {
	old := restartHook
	restartHook = f
	return func() { restartHook = old }
}
