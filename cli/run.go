package cli

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/iotgw/iotgw/buildinfo"
	"github.com/iotgw/iotgw/config"
	"github.com/iotgw/iotgw/extensions"
	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/logging"
)

// runFlags are the flags of `iotgw run` (and the gateway part of `demo`).
type runFlags struct {
	config, http, logFormat, logLevel, extensions string
}

func (f *runFlags) register(fsName string, e env) (*runFlags, func([]string) (int, bool)) {
	fs := newFlags(fsName, e)
	fs.StringVar(&f.config, "config", defaultConfig(e), "main configuration file (tb_gateway.json or .yaml)")
	fs.StringVar(&f.http, "http", "", "serve /healthz and /metrics on this address (e.g. 127.0.0.1:9100); off when empty")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "INFO", "gateway log level (connectors use their own logLevel)")
	fs.StringVar(&f.extensions, "extensions", "", "extensions folder (default: extensions/ beside the configuration folder)")
	return f, func(args []string) (int, bool) { return parseFlags(fs, args) }
}

// extensionsDir is --extensions, else "extensions" beside the configuration folder
// (the Python gateway keeps its config and extensions folders side by side).
func (f *runFlags) extensionsDir(cfg *config.Gateway) string {
	if f.extensions != "" {
		abs, err := filepath.Abs(f.extensions)
		if err == nil {
			return abs
		}
		return f.extensions
	}
	return filepath.Join(filepath.Dir(cfg.Dir), "extensions")
}

func cmdRun(args []string, e env) int {
	f, parse := new(runFlags).register("run", e)
	if code, ok := parse(args); !ok {
		return code
	}
	defer startProfiles(e)()
	level, err := logging.ParseLevel(f.logLevel)
	if err != nil {
		fmt.Fprintf(e.stderr, "iotgw run: --log-level: %v\n", err)
		return exitUsage
	}
	log, err := logging.New(e.stderr, f.logFormat, slog.LevelDebug-4)
	if err != nil {
		fmt.Fprintf(e.stderr, "iotgw run: --log-format: %v\n", err)
		return exitUsage
	}
	gwLog := logging.WithLevel(log, level)
	cfg := loadConfig(f.config, e, gwLog)
	if cfg == nil {
		return exitError
	}
	gw, err := newGateway(cfg, f, log, gwLog)
	if err != nil {
		printErr(e.stderr, err)
		return exitError
	}
	ctx, hup, stop := signalContext(e)
	defer stop()
	return serve(ctx, gw, cfg, f, hup, gwLog)
}

// newGateway wires the gateway with the extensions folder and per-connector loggers.
func newGateway(cfg *config.Gateway, f *runFlags, base, gwLog *slog.Logger) (*gateway.Gateway, error) {
	extDir := f.extensionsDir(cfg)
	ext := extensions.New(extDir, gwLog.With("component", "extensions"))
	return gateway.New(cfg, gateway.Options{
		Logger:           gwLog,
		Version:          buildinfo.Version,
		ConnectorFactory: ext.ConnectorFactory,
		Converters:       ext.Converters,
		ExtensionsDir:    extDir,
		LoggerFor: func(name, level string) *slog.Logger {
			return logging.WithLevel(base, config.SlogLevel(level)).With("connector", name)
		},
	})
}
