// Command bench is iotgw's end-to-end benchmark harness. It starts a real broker
// (Debian's mosquitto when installed, else the embedded mochi broker in its own
// process), puts simulated serial devices on pseudo-terminals, runs the gateway as a
// child process from a generated configuration, writes frames and counts what
// reaches a subscriber on the gateway API topic. It reports, per scenario and
// storage type, frames/s written and values/s delivered, values lost, latency
// (frame written → message at the subscriber), gateway CPU per million frames,
// peak and idle RSS and the time from start to connected, as a Markdown table and
// a JSON file.
//
//	go run ./bench                                  # every scenario, memory/file/sqlite
//	go run ./bench -scenarios burst-1 -storage memory -profile /tmp/prof
//	go run ./bench -gateway-cmd 'python3 -m thingsboard_gateway.tb_gateway {config}'
//
// See docs/performance.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
)

func main() {
	if os.Getenv(brokerChildEnv) != "" {
		os.Exit(brokerChild())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := benchMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line flags.
type options struct {
	scenarios  string
	storages   string
	broker     string
	gatewayCmd string
	gatewayBin string
	jsonOut    string
	mdOut      string
	profileDir string
	tiny       bool
	fsyncMS    int
	fleet      int
	selfProf   string
	nagle      bool
	keep       bool
}

func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenarios, "scenarios", "burst-1,paced-100,fleet-1000,latency,idle", "scenarios to run, comma-separated")
	fs.StringVar(&o.storages, "storage", "memory,file,sqlite", "storage types, comma-separated (idle runs with the first)")
	fs.StringVar(&o.broker, "broker", "auto", "broker: auto (mosquitto when installed, else mochi), mosquitto or mochi")
	fs.StringVar(&o.gatewayCmd, "gateway-cmd", "", "run this gateway instead of iotgw, e.g. 'python3 -m thingsboard_gateway.tb_gateway {config}'; {config} is the generated tb_gateway.json")
	fs.StringVar(&o.gatewayBin, "gateway-bin", "", "iotgw binary to run (default: go build ./cmd/iotgw into a temporary folder)")
	fs.StringVar(&o.jsonOut, "json", "bench-results.json", "write the results as JSON here (empty: no file)")
	fs.StringVar(&o.mdOut, "md", "", "also write the Markdown table to this file")
	fs.StringVar(&o.profileDir, "profile", "", "have iotgw write CPU, allocation, mutex and block profiles into this folder (IOTGW_*PROFILE)")
	fs.IntVar(&o.fsyncMS, "fsync-ms", 100, "fsync_interval_ms of file and sqlite storage in the generated configuration (0: fdatasync before every Put returns; -1: leave the key out)")
	fs.IntVar(&o.fleet, "fleet-devices", 1000, "devices of the fleet-1000 scenario")
	fs.StringVar(&o.selfProf, "harness-cpuprofile", "", "write the harness's own CPU profile here")
	fs.BoolVar(&o.nagle, "broker-nagle", false, "leave Nagle's algorithm on in mosquitto (its default, set_tcp_nodelay false); the harness turns it off as ThingsBoard does")
	fs.BoolVar(&o.tiny, "tiny", false, "tiny sizes (the CI smoke test): a few frames and devices, idle 1 s")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder (configurations, gateway logs, data)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	if o.selfProf != "" {
		f, err := os.Create(o.selfProf)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			logf("bench: -harness-cpuprofile: %v", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	results, err := runAll(ctx, o, logf)
	if len(results) > 0 {
		table := markdown(results)
		fmt.Fprint(stdout, table)
		if o.mdOut != "" {
			if werr := os.WriteFile(o.mdOut, []byte(table), 0o644); werr != nil {
				logf("bench: %v", werr)
			}
		}
		if o.jsonOut != "" {
			if werr := writeJSON(o.jsonOut, map[string]any{"machine": machine(), "command": strings.Join(os.Args, " "), "results": results}); werr != nil {
				logf("bench: %v", werr)
			} else {
				logf("results: %s", o.jsonOut)
			}
		}
	}
	if err != nil {
		logf("bench: %v", err)
		return 1
	}
	for _, r := range results {
		if r.Error != "" {
			return 1
		}
	}
	return 0
}

// runAll runs the selected scenarios; it returns what was measured and the first error.
func runAll(ctx context.Context, o options, logf func(string, ...any)) ([]Result, error) {
	work, err := os.MkdirTemp("", "iotgw-bench-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		logf("work folder: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	r := &runner{gatewayCmd: o.gatewayCmd, workDir: work, fsyncMS: o.fsyncMS, log: logf}
	if o.profileDir != "" {
		if r.profileDir, err = filepath.Abs(o.profileDir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(r.profileDir, 0o755); err != nil {
			return nil, err
		}
	}
	if o.gatewayCmd == "" {
		r.bin = o.gatewayBin
		if r.bin == "" {
			r.bin = filepath.Join(work, "iotgw")
			if err := buildGateway(ctx, r.bin); err != nil {
				return nil, err
			}
		}
	}
	b, err := startBroker(o.broker, work, !o.nagle)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	r.broker = b
	logf("broker: %s on %s", b.kind, b.addr)

	want := map[string]bool{}
	for _, s := range strings.Split(o.scenarios, ",") {
		want[strings.TrimSpace(s)] = true
	}
	storages := strings.Split(o.storages, ",")
	var results []Result
	var firstErr error
	for _, sc := range scenarios(o.tiny, o.fleet) {
		if !want[sc.Name] {
			continue
		}
		delete(want, sc.Name)
		sts := storages
		if sc.Idle > 0 {
			sts = storages[:1]
		}
		for _, st := range sts {
			st = strings.TrimSpace(st)
			logf("running %s with %s storage ...", sc.Name, st)
			res, err := r.run(ctx, sc, st)
			if err != nil {
				res.Error = err.Error()
				firstErr = cmp(firstErr, fmt.Errorf("%s/%s: %w", sc.Name, st, err))
			}
			logf("  %s", summary(res))
			results = append(results, res)
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
		}
	}
	for name := range want {
		firstErr = cmp(firstErr, fmt.Errorf("unknown scenario %q", name))
	}
	return results, firstErr
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// buildGateway builds ./cmd/iotgw of the module this harness is in.
func buildGateway(ctx context.Context, out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./cmd/iotgw")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/iotgw: %w\n%s", err, b)
	}
	return nil
}

func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the iotgw module: run from the repository or pass -gateway-bin")
	}
	return filepath.Dir(mod), nil
}

// machine describes the machine the figures come from.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d × %s, %s, %s", runtime.NumCPU(), cpu, kernel, runtime.Version())
}

func summary(r Result) string {
	if r.Scenario == "idle" {
		return fmt.Sprintf("idle: RSS %.1f MB, CPU %.2f%% of a core, connected in %.0f ms %s", r.IdleRSSMB, r.CPUPercent, r.ConnectMS, r.Error)
	}
	return fmt.Sprintf("%d frames written (%.0f/s), %d values delivered (%.0f/s), lost %d, p50 %.2f ms p99 %.2f ms, CPU %.2f s/M frames (%.0f%%; broker %.0f%%, harness %.0f%%, machine busy %.0f%%), RSS peak %.1f MB %s",
		r.FramesWritten, r.WriteFPS, r.ValuesDelivered, r.DeliverVPS, r.ValuesLost, r.LatencyP50ms, r.LatencyP99ms, r.CPUPerMFrames, r.CPUPercent, r.BrokerCPUPercent, r.HarnessCPUPercent, r.MachineBusyPercent, r.PeakRSSMB, r.Error)
}

// markdown renders the results as a table.
func markdown(rs []Result) string {
	var b bytes.Buffer
	b.WriteString("| scenario | storage | frames | frames/s written | values/s delivered | values lost | latency p50 / p99 / max ms | CPU s per M frames | CPU % of a core | RSS peak / idle MB | start → connected ms | note |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		if r.Scenario == "idle" {
			fmt.Fprintf(&b, "| idle | %s | – | – | – | – | – | – | %.2f | %.1f / %.1f | %.0f | %s |\n", r.Storage, r.CPUPercent, r.PeakRSSMB, r.IdleRSSMB, r.ConnectMS, note(r))
			continue
		}
		lost := thousands(float64(r.ValuesLost))
		if r.Error != "" && r.ValuesLost == 0 {
			lost = "–"
		}
		fmt.Fprintf(&b, "| %s (%d × %s) | %s | %s | %s | %s | %s | %.2f / %.2f / %.1f | %.2f | %.0f | %.1f / %.1f | %.0f | %s |\n",
			r.Scenario, r.Devices, rate(r.Rate), r.Storage, thousands(float64(r.FramesWritten)), thousands(r.WriteFPS), thousands(r.DeliverVPS), lost,
			r.LatencyP50ms, r.LatencyP99ms, r.LatencyMaxms, r.CPUPerMFrames, r.CPUPercent, r.PeakRSSMB, r.IdleRSSMB, r.ConnectMS, note(r))
	}
	return b.String()
}

// note is the error of a result, first line, shortened, with the machine's load.
func note(r Result) string {
	n, _, _ := strings.Cut(r.Error, "\n")
	if len(n) > 90 {
		n = n[:90] + "…"
	}
	n = strings.ReplaceAll(n, "|", "/")
	if r.MachineBusyPercent > 0 {
		if n != "" {
			n += "; "
		}
		n += fmt.Sprintf("machine %.0f%% busy", r.MachineBusyPercent)
	}
	return n
}

func rate(r float64) string {
	if r == 0 {
		return "burst"
	}
	return fmt.Sprintf("%g/s", r)
}

// thousands formats a non-negative number with thousands separators.
func thousands(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
