// Package gatewaytest runs the real gateway core in tests.
package gatewaytest

import (
	"context"
	"testing"
	"time"

	"github.com/iotgw/iotgw/gateway"
)

// StopWithin is how long a stopped gateway may take: the gateway promises 5 s.
const StopWithin = 6 * time.Second

// Run runs gw until stop is called or the test ends, and fails the test when Run
// returns an error or does not stop within StopWithin. stop is idempotent.
func Run(t testing.TB, gw *gateway.Gateway) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway stopped with an error: %v", err)
			}
		case <-time.After(StopWithin):
			t.Errorf("gateway did not stop within %v", StopWithin)
		}
	}
	t.Cleanup(stop)
	return stop
}
