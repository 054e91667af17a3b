package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/brokertest"
	"github.com/iotgw/iotgw/sim"
)

// daemon is `iotgw run` as a child process with its stderr captured.
type daemon struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{done: make(chan error, 1)}
	d.cmd = iotgw(context.Background(), append([]string{"run"}, args...)...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.logs.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
	}()
	go func() { <-copied; d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(6 * time.Second):
			_ = d.cmd.Process.Kill()
			t.Error("iotgw run did not stop within 6 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", d.log())
		}
	})
	return d
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

const serialTemplate = `{
  "name": "Serial Connector",
  "logLevel": "INFO",
  "devices": [{
    "name": "SerialDevice1", "type": "default", "port": %q, "baudrate": 9600,
    "telemetry": [%s],
    "attributes": [{"key": "SerialNumber", "type": "string", "fromByte": 3, "toByte": -1}]
  }]
}`

func writeConfig(t *testing.T, dir string, b *brokertest.Broker, link, telemetry string) string {
	t.Helper()
	main := fmt.Sprintf(`{"thingsboard":{"host":%q,"port":%d,"security":{"type":"accessToken","accessToken":"T"}},
"storage":{"type":"memory"},
"connectors":[{"name":"Serial Connector","type":"serial","configuration":"serial.json","class":"SerialConnector"}]}`, b.Host(), b.Port())
	if err := os.WriteFile(filepath.Join(dir, "tb_gateway.json"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	writeSerial(t, dir, link, telemetry)
	return filepath.Join(dir, "tb_gateway.json")
}

func writeSerial(t *testing.T, dir, link, telemetry string) {
	t.Helper()
	// Write then rename, as editors and config management tools do.
	tmp := filepath.Join(dir, "serial.json.tmp")
	if err := os.WriteFile(tmp, fmt.Appendf(nil, serialTemplate, link, telemetry), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "serial.json")); err != nil {
		t.Fatal(err)
	}
}

// keysSeen returns the telemetry keys of SerialDevice1 in messages after index from.
func keysSeen(b *brokertest.Broker, from int) (map[string]bool, int) {
	msgs := b.Messages("v1/gateway/telemetry")
	keys := map[string]bool{}
	for _, m := range msgs[min(from, len(msgs)):] {
		var p map[string][]struct {
			Values map[string]any `json:"values"`
		}
		if json.Unmarshal(m.Payload, &p) == nil {
			for _, e := range p["SerialDevice1"] {
				for k := range e.Values {
					keys[k] = true
				}
			}
		}
	}
	return keys, len(msgs)
}

func eventually(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadHealthAndMetrics runs `iotgw run --http` on a simulated serial device
// and the embedded broker: a changed connector file takes effect on SIGHUP without
// a restart, an invalid change is rejected while the old configuration keeps
// running, and /healthz and /metrics agree with what the broker received.
func TestReloadHealthAndMetrics(t *testing.T) {
	b := brokertest.Start(t, "")
	dir := t.TempDir()
	link := filepath.Join(dir, "ttySIM")
	simCtx, stopSim := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() { simDone <- sim.RunSerial(simCtx, sim.SerialOptions{Link: link, Rate: 50}) }()
	t.Cleanup(func() { stopSim(); <-simDone })
	eventually(t, "simulator link", 5*time.Second, func() bool { _, err := os.Stat(link); return err == nil })

	cfg := writeConfig(t, dir, b, link, `{"key": "humidity", "type": "float", "untilDelimiter": "\r"}`)
	httpAddr := freeAddr(t)
	d := startDaemon(t, "--config", cfg, "--http", httpAddr)

	var from int
	eventually(t, "humidity telemetry", 10*time.Second, func() bool {
		k, _ := keysSeen(b, 0)
		return k["humidity"]
	})

	// Health: platform connected, the connector connected.
	resp, err := http.Get("http://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var health struct {
		Status            string `json:"status"`
		PlatformConnected bool   `json:"platformConnected"`
		Connectors        []struct {
			Name      string `json:"name"`
			Connected bool   `json:"connected"`
		} `json:"connectors"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if resp.StatusCode != 200 || !health.PlatformConnected || len(health.Connectors) != 1 || !health.Connectors[0].Connected {
		t.Fatalf("/healthz %d %+v", resp.StatusCode, health)
	}

	// A changed file: a second datapoint appears after SIGHUP, without a restart.
	writeSerial(t, dir, link, `{"key": "humidity", "type": "float", "untilDelimiter": "\r"},
	                           {"key": "humidityText", "type": "string", "untilDelimiter": "\r"}`)
	_, from = keysSeen(b, 0)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new datapoint after SIGHUP", 10*time.Second, func() bool {
		k, _ := keysSeen(b, from)
		return k["humidityText"]
	})

	// An invalid change is rejected with check's error and the running connector goes on.
	writeSerial(t, dir, link, `{"key": "humidity", "type": 5}`)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rejection in the log", 5*time.Second, func() bool {
		return strings.Contains(d.log(), "telemetry[0].type")
	})
	_, from = keysSeen(b, 0)
	eventually(t, "data still flowing with the old configuration", 5*time.Second, func() bool {
		k, _ := keysSeen(b, from)
		return k["humidityText"]
	})

	// Metrics against the broker: stop the device, let the gateway drain, and compare.
	stopSim()
	<-simDone
	simDone <- nil
	var sent float64
	eventually(t, "values_sent equal to what the broker received", 10*time.Second, func() bool {
		m := scrape(t, httpAddr)
		sent = m["iotgw_values_sent_total"]
		return sent > 0 && sent == float64(countValues(b)) && m["iotgw_storage_depth"] == 0
	})
	m := scrape(t, httpAddr)
	if m["iotgw_platform_connected"] != 1 || m["iotgw_messages_received_total"] == 0 {
		t.Fatalf("metrics %v", m)
	}
}

// countValues counts the datapoints (telemetry values and attributes) the broker
// received.
func countValues(b *brokertest.Broker) int {
	n := 0
	for _, m := range b.Messages("v1/gateway/telemetry") {
		var p map[string][]struct {
			Values map[string]json.RawMessage `json:"values"`
		}
		if json.Unmarshal(m.Payload, &p) == nil {
			for _, entries := range p {
				for _, e := range entries {
					n += len(e.Values)
				}
			}
		}
	}
	for _, m := range b.Messages("v1/gateway/attributes") {
		n += countAttributeKeys(m.Payload)
	}
	return n
}

// countAttributeKeys counts the keys of {"D":{"k":v,...},...} with a streaming
// decoder: merged records may repeat a key in one object, which a map collapses.
func countAttributeKeys(payload []byte) int {
	dec := json.NewDecoder(bytes.NewReader(payload))
	n := 0
	if _, err := dec.Token(); err != nil { // {
		return 0
	}
	for dec.More() {
		if _, err := dec.Token(); err != nil { // device
			return n
		}
		if _, err := dec.Token(); err != nil { // {
			return n
		}
		for dec.More() {
			var val json.RawMessage
			if _, err := dec.Token(); err != nil { // key
				return n
			}
			if dec.Decode(&val) != nil {
				return n
			}
			n++
		}
		if _, err := dec.Token(); err != nil { // }
			return n
		}
	}
	return n
}

// scrape reads /metrics into name → value for unlabelled samples.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err == nil {
			out[name] = f
		}
	}
	return out
}

// TestLogFlood: three devices whose ports do not exist keep failing for 10 s; the
// log stays bounded (one line per device per backoff step), never a tight loop.
func TestLogFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s test")
	}
	b := brokertest.Start(t, "")
	dir := t.TempDir()
	var devs []string
	for i := range 3 {
		devs = append(devs, fmt.Sprintf(`{"name":"Gone%d","port":%q,"telemetry":[{"key":"k","type":"int"}]}`, i, filepath.Join(dir, fmt.Sprintf("ttyGONE%d", i))))
	}
	main := fmt.Sprintf(`{"thingsboard":{"host":%q,"port":%d,"security":{"accessToken":"T"}},
"connectors":[{"name":"S","type":"serial","configuration":"s.json"}]}`, b.Host(), b.Port())
	_ = os.WriteFile(filepath.Join(dir, "tb_gateway.json"), []byte(main), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "s.json"), []byte(`{"devices":[`+strings.Join(devs, ",")+`]}`), 0o644)
	d := startDaemon(t, "--config", filepath.Join(dir, "tb_gateway.json"))
	time.Sleep(10 * time.Second)
	logs := d.log()
	n := strings.Count(logs, "\n")
	// Backoff 1, 2, 4, 8 s: about 5 failures per device in 10 s, plus start-up lines.
	if n > 40 {
		t.Fatalf("%d log lines in 10 s for 3 failing devices:\n%s", n, logs)
	}
	for i := range 3 {
		if !strings.Contains(logs, fmt.Sprintf("Gone%d", i)) {
			t.Fatalf("no log line for device Gone%d:\n%s", i, logs)
		}
	}
	t.Logf("%d log lines in 10 s", n)
}
