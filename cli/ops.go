package cli

import (
	"context"
	"log/slog"

	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/ops"
)

// startOps serves /healthz and /metrics for gw on addr until ctx is done.
func startOps(ctx context.Context, addr string, gw *gateway.Gateway, log *slog.Logger) (string, error) {
	a, err := ops.Serve(ctx, addr, gw, gw.Metrics(), log.With("component", "http"))
	if err != nil {
		return "", err
	}
	return a.String(), nil
}
