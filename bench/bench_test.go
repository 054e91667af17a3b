package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the embedded broker child process.
func TestMain(m *testing.M) {
	if os.Getenv(brokerChildEnv) != "" {
		os.Exit(brokerChild())
	}
	os.Exit(m.Run())
}

// TestSmoke runs every scenario at a tiny size with every storage type, against the
// embedded broker and against mosquitto when installed, with the gateway built from
// this checkout. It asserts that everything runs and nothing is lost; no timing.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "iotgw")
	build := exec.Command("go", "build", "-o", bin, "./cmd/iotgw")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/iotgw: %v\n%s", err, out)
	}
	// -gateway-cmd: any gateway command line, {config} replaced, run through sh.
	t.Run("gateway-cmd", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		results, err := runAll(ctx, options{
			scenarios: "latency", storages: "memory", broker: "mochi", tiny: true,
			gatewayCmd: shellQuote(bin) + " run --log-level WARNING --config {config}",
		}, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		if len(results) != 1 || results[0].Error != "" || results[0].FramesDelivered != 5 {
			t.Fatalf("results: %+v", results)
		}
	})
	brokers := []string{"mochi"}
	if _, err := os.Stat(mosquittoPath); err == nil {
		brokers = append(brokers, "mosquitto")
	}
	want := scenarios(true, 0)
	for _, br := range brokers {
		t.Run(br, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
			defer cancel()
			var log strings.Builder
			results, err := runAll(ctx, options{
				scenarios: "burst-1,paced-100,fleet-1000,latency,idle", storages: "memory,file,sqlite",
				broker: br, gatewayBin: bin, tiny: true, fsyncMS: 100,
			}, func(format string, a ...any) {
				log.WriteString(strings.TrimSpace(sprintf(format, a...)) + "\n")
			})
			if err != nil {
				t.Fatalf("runAll: %v\nlog:\n%s", err, log.String())
			}
			if len(results) != 13 {
				t.Fatalf("got %d results, want 13 (4 scenarios × 3 storages + idle)", len(results))
			}
			for _, r := range results {
				if r.Broker != br {
					t.Errorf("%s/%s ran on %s", r.Scenario, r.Storage, r.Broker)
				}
				if r.Error != "" {
					t.Errorf("%s/%s: %s", r.Scenario, r.Storage, r.Error)
				}
				if r.ConnectMS <= 0 {
					t.Errorf("%s/%s: no start → connected time", r.Scenario, r.Storage)
				}
				if r.Scenario == "idle" {
					if r.IdleRSSMB <= 0 {
						t.Errorf("idle: no RSS")
					}
					continue
				}
				var sc scenario
				for _, s := range want {
					if s.Name == r.Scenario {
						sc = s
					}
				}
				total := sc.Devices * sc.Frames
				if r.FramesWritten != total || r.FramesDelivered != total || r.ValuesLost != 0 || r.ValuesDelivered != total*valuesPerFrame {
					t.Errorf("%s/%s: written %d, delivered %d frames (%d values), lost %d values; want %d frames, none lost",
						r.Scenario, r.Storage, r.FramesWritten, r.FramesDelivered, r.ValuesDelivered, r.ValuesLost, total)
				}
				if r.PeakRSSMB <= 0 || r.LatencyMaxms <= 0 {
					t.Errorf("%s/%s: missing figures: %+v", r.Scenario, r.Storage, r)
				}
			}
			table := markdown(results)
			if strings.Count(table, "\n") != 15 || strings.Count(table, "| burst-1 (1 × burst) |") != 3 {
				t.Errorf("table has %d lines, want 15:\n%s", strings.Count(table, "\n"), table)
			}
		})
	}
}
