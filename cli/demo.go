package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	serialexample "github.com/iotgw/iotgw/examples/serial"
	"github.com/iotgw/iotgw/logging"
	"github.com/iotgw/iotgw/platform"
	"github.com/iotgw/iotgw/sim"
)

// cmdDemo runs the whole job on one machine: the platform emulator, a simulated
// serial device on a pseudo-terminal, and the gateway with the guide's
// configuration (examples/serial, port and server filled in).
func cmdDemo(args []string, e env) int {
	fs := newFlags("demo", e)
	httpAddr := fs.String("http", platform.DefaultHTTPAddr, "the emulator's web page address (a free port is used if this one is taken)")
	rate := fs.Float64("rate", 2, "frames per second from the simulated device")
	count := fs.Int("count", 1, "simulated devices")
	verbose := fs.Bool("v", false, "log the gateway's debug lines")
	status := fs.Bool("status", true, "print a live status line")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log, _ := logging.New(e.stderr, "text", level)

	ctx, _, stop := signalContext(e)
	defer stop()

	dir, err := os.MkdirTemp("", "iotgw-demo-")
	if err != nil {
		printErr(e.stderr, err)
		return exitError
	}
	defer os.RemoveAll(dir)

	// The emulator: its own MQTT port, the web page where asked (or any free port).
	addr := *httpAddr
	if l, err := net.Listen("tcp", addr); err != nil {
		addr = "127.0.0.1:0"
	} else {
		l.Close()
	}
	p, err := platform.New(platform.Options{MQTTAddr: "127.0.0.1:0", HTTPAddr: addr, Logger: log.With("component", "platform")})
	if err != nil {
		printErr(e.stderr, err)
		return exitError
	}
	// The emulator outlives the gateway's stop, so that the last data is delivered.
	if err := p.Start(context.WithoutCancel(ctx)); err != nil {
		printErr(e.stderr, err)
		return exitError
	}
	defer p.Close()

	var wg sync.WaitGroup
	defer wg.Wait()
	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	link := filepath.Join(dir, "ttyDEMO")
	var simStats sim.SerialStats
	simErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		simErr <- sim.RunSerial(simCtx, sim.SerialOptions{Link: link, Count: *count, Rate: *rate, Logger: log.With("component", "sim"), Stats: &simStats})
	}()

	cfgPath, err := writeDemoConfig(dir, p.MQTTAddr(), link, *count)
	if err != nil {
		printErr(e.stderr, err)
		return exitError
	}
	if err := waitForLinks(ctx, link, *count, simErr); err != nil {
		printErr(e.stderr, err)
		return exitError
	}
	f := &runFlags{config: cfgPath}
	gwLog := logging.WithLevel(log, level)
	cfg := loadConfig(cfgPath, e, gwLog)
	if cfg == nil {
		return exitError
	}
	gw, err := newGateway(cfg, f, log, gwLog)
	if err != nil {
		printErr(e.stderr, err)
		return exitError
	}

	fmt.Fprintf(e.stdout, "iotgw demo: simulated serial device → gateway → platform emulator\n")
	fmt.Fprintf(e.stdout, "  web page:   http://%s/\n", p.HTTPAddr())
	fmt.Fprintf(e.stdout, "  JSON API:   http://%s/api/devices\n", p.HTTPAddr())
	fmt.Fprintf(e.stdout, "  MQTT:       %s (gateway API)\n", p.MQTTAddr())
	fmt.Fprintf(e.stdout, "  config:     %s\n", cfgPath)
	fmt.Fprintf(e.stdout, "Press Ctrl-C to stop.\n")

	if *status {
		wg.Add(1)
		go func() {
			defer wg.Done()
			printStatus(ctx, e.stdout, gw.Counters().MessagesReceived.Load, gw.Counters().ValuesSent.Load, func() int { return len(p.Devices()) })
		}()
	}
	code := serve(ctx, gw, cfg, f, make(chan struct{}), gwLog)
	stopSim()
	fmt.Fprintln(e.stdout)
	return code
}

// writeDemoConfig copies the embedded example into dir with the emulator's address
// and the simulated device's port filled in, and returns the main file's path.
func writeDemoConfig(dir, mqttAddr, link string, count int) (string, error) {
	host, portStr, err := net.SplitHostPort(mqttAddr)
	if err != nil {
		return "", err
	}
	port, _ := strconv.Atoi(portStr)
	var main map[string]any
	if err := readEmbedded("tb_gateway.json", &main); err != nil {
		return "", err
	}
	tb := main["thingsboard"].(map[string]any)
	tb["host"], tb["port"] = host, port
	tb["security"] = map[string]any{"type": "accessToken", "accessToken": "DEMO_TOKEN"}

	var conn map[string]any
	if err := readEmbedded("custom_serial.json", &conn); err != nil {
		return "", err
	}
	devs := conn["devices"].([]any)
	first := devs[0].(map[string]any)
	var out []any
	for i := range count {
		d := map[string]any{}
		for k, v := range first {
			d[k] = v
		}
		d["port"] = link
		if count > 1 {
			d["port"] = link + strconv.Itoa(i)
			d["name"] = "SerialDevice" + strconv.Itoa(i+1)
		}
		out = append(out, d)
	}
	conn["devices"] = out
	conn["logLevel"] = "INFO"
	for name, v := range map[string]any{"tb_gateway.json": main, "custom_serial.json": conn} {
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "tb_gateway.json"), nil
}

func readEmbedded(name string, v any) error {
	b, err := serialexample.Files.ReadFile(name)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// waitForLinks waits until the simulator made its pseudo-terminal links.
func waitForLinks(ctx context.Context, link string, count int, simErr <-chan error) error {
	want := []string{link}
	if count > 1 {
		want = want[:0]
		for i := range count {
			want = append(want, link+strconv.Itoa(i))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ready := true
		for _, l := range want {
			if _, err := os.Stat(l); err != nil {
				ready = false
			}
		}
		if ready {
			return nil
		}
		select {
		case err := <-simErr:
			return fmt.Errorf("device simulator: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("device simulator: no pseudo-terminal at %s after 5 s", link)
		}
	}
}

// printStatus rewrites one status line every second until ctx is done.
func printStatus(ctx context.Context, w io.Writer, frames, delivered func() uint64, devices func() int) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v := delivered()
			fmt.Fprintf(w, "\rframes read %d · values delivered %d · %d values/s · devices %d   ",
				frames(), v, v-last, devices())
			last = v
		}
	}
}
