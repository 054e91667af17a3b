package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/iotgw/iotgw/cli"
)

// TestMain lets the test binary act as the iotgw binary: with IOTGW_AS_MAIN=1 it
// runs the command line, so subprocess tests run the real program without a build.
func TestMain(m *testing.M) {
	if os.Getenv("IOTGW_AS_MAIN") == "1" {
		os.Exit(cli.Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func iotgw(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "IOTGW_AS_MAIN=1")
	return cmd
}

// TestDemo starts `iotgw demo` as a subprocess: within seconds the emulator's HTTP
// API shows SerialDevice1 with humidity values, and SIGINT stops it with exit 0.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := iotgw(ctx, "demo", "--http", "127.0.0.1:0", "--rate", "20", "--status=false")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	urlRe := regexp.MustCompile(`JSON API:\s+(http://\S+)/api/devices`)
	base := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := urlRe.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	if base == "" {
		t.Fatal("demo did not print its API address")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		var devs []struct {
			Name   string `json:"name"`
			Latest map[string]struct {
				Value json.RawMessage `json:"value"`
			} `json:"latest"`
		}
		resp, err := http.Get(base + "/api/devices")
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&devs)
			resp.Body.Close()
		}
		found := false
		for _, d := range devs {
			if d.Name == "SerialDevice1" && len(d.Latest["humidity"].Value) > 0 {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no humidity from SerialDevice1 in the emulator after 20 s: %+v", devs)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("demo exited with %d after SIGINT, want 0", ee.ExitCode())
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("demo did not stop within 6 s of SIGINT")
	}
}
