package cli

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/iotgw/iotgw/logging"
	"github.com/iotgw/iotgw/platform"
	"github.com/iotgw/iotgw/sim"
)

func cmdSim(args []string, e env) int {
	if len(args) == 0 || args[0] != "serial" {
		fmt.Fprintln(e.stderr, "usage: iotgw sim serial --link PATH [--rate N] [--count N] [--scenario FILE]")
		return exitUsage
	}
	fs := newFlags("sim serial", e)
	link := fs.String("link", "", "where to symlink the gateway end of the pseudo-terminal (the device's \"port\")")
	rate := fs.Float64("rate", 1, "frames per second per device; 0 = as fast as possible")
	count := fs.Int("count", 1, "number of devices (links PATH0..PATHn-1 when more than one)")
	scenario := fs.String("scenario", "", "JSON scenario file with other frames and replies")
	serialNo := fs.String("serial", "", "first device's serial number")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	if *link == "" {
		fmt.Fprintln(e.stderr, "iotgw sim serial: --link PATH is required")
		return exitUsage
	}
	log, _ := logging.New(e.stderr, "text", slog.LevelInfo)
	ctx, _, stop := signalContext(e)
	defer stop()
	err := sim.RunSerial(ctx, sim.SerialOptions{
		Link: *link, Count: *count, Rate: *rate, Scenario: *scenario, Serial: *serialNo, Logger: log,
	})
	if err != nil && ctx.Err() == nil {
		printErr(e.stderr, err)
		return exitError
	}
	return exitOK
}

// tokens is a repeatable --token flag.
type tokens []string

func (t *tokens) String() string     { return strings.Join(*t, ",") }
func (t *tokens) Set(s string) error { *t = append(*t, s); return nil }

func cmdPlatform(args []string, e env) int {
	fs := newFlags("platform", e)
	mqttAddr := fs.String("mqtt", platform.DefaultMQTTAddr, "MQTT listen address")
	httpAddr := fs.String("http", platform.DefaultHTTPAddr, "web page and JSON API listen address")
	var toks tokens
	fs.Var(&toks, "token", "accepted access token (repeatable); any token when none is given")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	log, _ := logging.New(e.stderr, "text", slog.LevelInfo)
	p, err := platform.New(platform.Options{MQTTAddr: *mqttAddr, HTTPAddr: *httpAddr, Tokens: toks, Logger: log})
	if err != nil {
		printErr(e.stderr, err)
		return exitError
	}
	ctx, _, stop := signalContext(e)
	defer stop()
	if err := p.Start(ctx); err != nil {
		printErr(e.stderr, err)
		return exitError
	}
	fmt.Fprintf(e.stdout, "platform emulator: MQTT on %s, web page on http://%s/\n", p.MQTTAddr(), p.HTTPAddr())
	<-ctx.Done()
	if err := p.Close(); err != nil {
		printErr(e.stderr, err)
		return exitError
	}
	return exitOK
}
