package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/iotgw/iotgw/config"
	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/sdnotify"
)

// serve runs the gateway until ctx is done, with the optional health and metrics
// listener, systemd notifications and SIGHUP reloads. It returns the exit code.
func serve(ctx context.Context, gw *gateway.Gateway, cfg *config.Gateway, f *runFlags, hup <-chan struct{}, log *slog.Logger) int {
	if f.http != "" {
		addr, err := startOps(ctx, f.http, gw, log)
		if err != nil {
			log.Error("health and metrics listener", "addr", f.http, "err", err)
			return exitError
		}
		log.Info("health and metrics", "url", "http://"+addr+"/metrics")
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- gw.Run(runCtx) }()

	if err := sdnotify.Ready(); err != nil {
		log.Debug("sd_notify", "err", err)
	}
	keepAlive := make(chan struct{})
	go func() {
		defer close(keepAlive)
		_ = sdnotify.KeepAlive(runCtx)
	}()
	defer func() { cancel(); <-keepAlive }()

	for {
		select {
		case <-hup:
			_ = sdnotify.Reloading()
			gw.Reload(ctx)
			_ = sdnotify.Ready()
		case <-ctx.Done():
			_ = sdnotify.Stopping()
			select {
			case err := <-done:
				if err != nil {
					log.Error("gateway stopped with an error", "err", err)
					return exitError
				}
				return exitOK
			case <-time.After(stopBudget):
				log.Error("gateway did not stop within the stop budget", "budget", stopBudget)
				return exitError
			}
		case err := <-done:
			if err != nil {
				log.Error("gateway stopped", "err", err)
				return exitError
			}
			return exitOK
		}
	}
}
