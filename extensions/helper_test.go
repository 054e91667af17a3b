package extensions

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// TestMain lets the test binary double as a process connector: the extension
// scripts the tests write exec it with IOTGW_EXT_HELPER=1.
func TestMain(m *testing.M) {
	if os.Getenv("IOTGW_EXT_HELPER") == "1" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

// helperMain is a process connector written in Go for the tests. Its configuration
// says what to do: "device", "period" (ms between data lines), "garbage" (write junk
// and a line over 1 MiB first), "ignoreStop", "deaf" (never read stdin).
func helperMain() int {
	in := bufio.NewReader(os.Stdin)
	var mu sync.Mutex
	send := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		os.Stdout.WriteString(s + "\n")
	}
	first, err := in.ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: no config:", err)
		return 2
	}
	var cfg struct {
		V             int
		Type          string
		Name          string
		Configuration struct {
			Device     string
			Period     int
			Garbage    bool
			IgnoreStop bool
			Deaf       bool
		}
	}
	if err := json.Unmarshal([]byte(first), &cfg); err != nil || cfg.V != 1 || cfg.Type != "config" {
		fmt.Fprintln(os.Stderr, "helper: bad config line:", first)
		return 2
	}
	c := cfg.Configuration
	fmt.Fprintf(os.Stderr, "helper %s started\n", cfg.Name)
	if c.Garbage {
		send("this is not json")
		send(`{"type":"data"}`)
		send(`{"v":7,"type":"data","deviceName":"X","telemetry":{"a":1}}`)
		send(`{"type":"teleport"}`)
		send(`{"type":"data","deviceName":"` + strings.Repeat("x", 1536<<10) + `"}`)
		send(`{"type":"data","deviceName":"` + c.Device + `","telemetry":{"afterGarbage":true}}`)
	}
	send(`{"type":"connect","device":"` + c.Device + `","deviceType":"helper"}`)
	done := make(chan struct{})
	go func() {
		seq := 0
		for {
			seq++
			send(fmt.Sprintf(`{"type":"data","deviceName":%q,"telemetry":{"seq":%d},"attributes":{"pid":%d}}`, c.Device, seq, os.Getpid()))
			select {
			case <-done:
				return
			case <-time.After(time.Duration(c.Period) * time.Millisecond):
			}
		}
	}()
	if c.Deaf {
		select {}
	}
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			if c.IgnoreStop {
				select {}
			}
			return 0
		}
		var m struct {
			Type   string
			Device string
			ID     int
			Method string
			Params json.RawMessage
			Data   json.RawMessage
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			fmt.Fprintln(os.Stderr, "helper: bad line:", line)
			continue
		}
		switch m.Type {
		case "stop":
			if c.IgnoreStop {
				continue
			}
			close(done)
			send(`{"type":"disconnect","device":"` + c.Device + `"}`)
			return 0
		case "attributes":
			send(fmt.Sprintf(`{"type":"log","level":"info","msg":"attributes %s %s"}`, m.Device, strings.ReplaceAll(string(m.Data), `"`, `'`)))
		case "rpc":
			switch m.Method {
			case "echo":
				send(fmt.Sprintf(`{"type":"rpc_reply","device":%q,"id":%d,"data":{"echo":%s}}`, m.Device, m.ID, m.Params))
			case "fail":
				send(fmt.Sprintf(`{"type":"rpc_reply","device":%q,"id":%d,"error":"it failed"}`, m.Device, m.ID))
			case "ok":
				send(fmt.Sprintf(`{"type":"rpc_reply","device":%q,"id":%d}`, m.Device, m.ID))
			case "status":
				send(`{"type":"status","connected":false}`)
				send(fmt.Sprintf(`{"type":"rpc_reply","device":%q,"id":%d}`, m.Device, m.ID))
			}
		}
	}
}

// testGateway is a connector.Gateway that records what a connector does.
type testGateway struct {
	mu      sync.Mutex
	data    []*connector.ConvertedData
	added   []string
	deleted []string
	replies []string // "device id json"
}

func (g *testGateway) SendToStorage(name, id string, d *connector.ConvertedData) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.data = append(g.data, d)
	return nil
}

func (g *testGateway) AddDevice(name, deviceType string, c connector.Connector) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.added = append(g.added, name+"/"+deviceType+"/"+c.Name())
}

func (g *testGateway) DelDevice(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deleted = append(g.deleted, name)
}

func (g *testGateway) SendRPCReply(device string, id int, content any) error {
	b, err := json.Marshal(content)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.replies = append(g.replies, fmt.Sprintf("%s %d %s", device, id, b))
	return nil
}

// snapshot returns copies of what was recorded.
func (g *testGateway) snapshot() (data []*connector.ConvertedData, added, deleted, replies []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*connector.ConvertedData(nil), g.data...), append([]string(nil), g.added...),
		append([]string(nil), g.deleted...), append([]string(nil), g.replies...)
}

// dataJSON renders converted data compactly for exact comparisons.
func dataJSON(d *connector.ConvertedData) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s/%s", d.DeviceName, d.DeviceType)
	for _, e := range d.Telemetry {
		fmt.Fprintf(&b, " ts=%d", e.TS)
		for _, dp := range e.Values {
			fmt.Fprintf(&b, " %s=%s", dp.Key, dp.Value.AppendJSON(nil))
		}
	}
	if len(d.Attributes) > 0 {
		b.WriteString(" attrs")
		for _, dp := range d.Attributes {
			fmt.Fprintf(&b, " %s=%s", dp.Key, dp.Value.AppendJSON(nil))
		}
	}
	return b.String()
}

// waitFor polls cond until it holds or the timeout ends.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logBuffer is a slog handler target that tests can read while a connector writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// helperExtensions makes an extensions folder whose type "helper" class
// "HelperConnector" runs this test binary as a process connector.
func helperExtensions(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "helper"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nIOTGW_EXT_HELPER=1 exec %q \"$@\"\n", self)
	if err := os.WriteFile(filepath.Join(dir, "helper", "HelperConnector"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startHelper creates and opens a helper process connector with the given
// configuration; the test's cleanup closes it.
func startHelper(t *testing.T, conf string, tune func(*processConnector)) (*processConnector, *testGateway, *logBuffer) {
	t.Helper()
	ext := New(helperExtensions(t), nil)
	f, ok := ext.ConnectorFactory("helper", "HelperConnector")
	if !ok {
		t.Fatal("helper connector not found")
	}
	gw := &testGateway{}
	log, lb := newLogger()
	c, err := f(gw, connector.Config{Name: "Helper", Type: "helper", Class: "HelperConnector", ID: "h1", Raw: json.RawMessage(conf), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	pc := c.(*processConnector)
	pc.minDelay, pc.maxDelay = 50*time.Millisecond, 200*time.Millisecond
	if tune != nil {
		tune(pc)
	}
	if err := pc.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc, gw, lb
}
