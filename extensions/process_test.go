package extensions

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// TestLoadAvgExample runs the Python example connector end to end: configuration
// down, device connect and data up, an attribute update and an RPC down, the reply
// up, and a graceful stop.
func TestLoadAvgExample(t *testing.T) {
	if _, err := os.Stat("/usr/bin/env"); err != nil {
		t.Skip("no /usr/bin/env for the example's shebang")
	}
	loadavg := filepath.Join(t.TempDir(), "loadavg")
	if err := os.WriteFile(loadavg, []byte("0.52 0.58 0.59 2/345 6789\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ext := New("../examples/extensions", nil)
	f, ok := ext.ConnectorFactory("loadavg", "LoadAvgConnector")
	if !ok {
		t.Fatal("example connector not found")
	}
	gw := &testGateway{}
	log, lb := newLogger()
	conf := `{"deviceName": "Host",
	          "pollPeriod": 0.05, "path": ` + jsonString(loadavg) + `}`
	c, err := f(gw, connector.Config{Name: "Load average", Type: "loadavg", Class: "LoadAvgConnector", ID: "la", Raw: json.RawMessage(conf), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsStopped() || c.Name() != "Load average" || c.Type() != "loadavg" || c.ID() != "la" {
		t.Fatalf("before Open: stopped=%v name=%q type=%q id=%q", c.IsStopped(), c.Name(), c.Type(), c.ID())
	}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	waitFor(t, "two data messages", 10*time.Second, func() bool { d, _, _, _ := gw.snapshot(); return len(d) >= 2 })
	data, added, _, _ := gw.snapshot()
	if want := []string{"Host/host/Load average"}; !equal(added, want) {
		t.Errorf("AddDevice calls = %q, want %q", added, want)
	}
	for _, d := range data[:2] {
		got := dataJSON(d)
		// The example stamps its own ts; check it, then the exact values.
		if len(d.Telemetry) != 1 || time.Since(time.UnixMilli(d.Telemetry[0].TS)) > time.Minute {
			t.Fatalf("data = %s, want one entry with a current ts", got)
		}
		got = strings.Replace(got, " ts="+itoa(d.Telemetry[0].TS), "", 1)
		if want := "Host/host load1=0.52 load5=0.58 load15=0.59 running=2 processes=345"; got != want {
			t.Errorf("data = %s\nwant   %s", got, want)
		}
	}
	waitFor(t, "status connected", 5*time.Second, c.IsConnected)

	c.OnAttributesUpdate(connector.AttributeUpdate{Device: "Host", Data: map[string]any{"interval": json.Number("10"), "label": "rack 4"}})
	c.ServerSideRPC(connector.RPCRequest{Device: "Host", ID: 7, Method: "getLoad"})
	c.ServerSideRPC(connector.RPCRequest{Device: "Host", ID: 8, Method: "reboot"})
	waitFor(t, "two RPC replies", 10*time.Second, func() bool { _, _, _, r := gw.snapshot(); return len(r) == 2 })
	_, _, _, replies := gw.snapshot()
	want := []string{
		`Host 7 {"load1":0.52,"load5":0.58,"load15":0.59,"running":2,"processes":345}`,
		`Host 8 {"error":"Method not found","success":false}`,
	}
	if !equal(replies, want) {
		t.Errorf("replies = %q\nwant %q", replies, want)
	}
	waitFor(t, "attribute update logged", 5*time.Second, func() bool {
		return strings.Contains(lb.String(), `msg="attribute update for Host: {\"interval\": 10, \"label\": \"rack 4\"}"`)
	})

	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v: the example should stop on \"stop\", not be killed", d)
	}
	if !c.IsStopped() || c.IsConnected() {
		t.Errorf("after Close: stopped=%v connected=%v", c.IsStopped(), c.IsConnected())
	}
	_, _, deleted, _ := gw.snapshot()
	if !equal(deleted, []string{"Host"}) {
		t.Errorf("DelDevice calls = %q, want [Host] (the example disconnects on stop)", deleted)
	}
	if strings.Contains(lb.String(), "killing") {
		t.Errorf("process was killed:\n%s", lb.String())
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestProcessRPC checks replies with data, with an error, without data, a status
// message, and a process that never answers.
func TestProcessRPC(t *testing.T) {
	c, gw, _ := startHelper(t, `{"device":"D","period":1000}`, func(c *processConnector) { c.rpcTimeout = 300 * time.Millisecond })
	waitFor(t, "connect", 5*time.Second, func() bool { _, a, _, _ := gw.snapshot(); return len(a) == 1 })
	c.ServerSideRPC(connector.RPCRequest{Device: "D", ID: 1, Method: "echo", Params: map[string]any{"x": json.Number("1.5"), "s": "a\nb"}})
	c.ServerSideRPC(connector.RPCRequest{Device: "D", ID: 2, Method: "fail"})
	c.ServerSideRPC(connector.RPCRequest{Device: "D", ID: 3, Method: "ok"})
	c.ServerSideRPC(connector.RPCRequest{Device: "D", ID: 4, Method: "silent"})
	waitFor(t, "four replies", 5*time.Second, func() bool { _, _, _, r := gw.snapshot(); return len(r) == 4 })
	_, added, _, replies := gw.snapshot()
	want := []string{
		`D 1 {"echo":{"s":"a\nb","x":1.5}}`,
		`D 2 {"error":"it failed","success":false}`,
		`D 3 {"success":true}`,
		`D 4 {"error":"Timeout waiting for response","success":false}`,
	}
	if !equal(replies, want) {
		t.Errorf("replies = %q\nwant %q", replies, want)
	}
	if !equal(added, []string{"D/helper/Helper"}) {
		t.Errorf("added = %q", added)
	}
	if !c.IsConnected() {
		t.Error("not connected before any status message")
	}
	c.ServerSideRPC(connector.RPCRequest{Device: "D", ID: 5, Method: "status"})
	waitFor(t, "status false", 5*time.Second, func() bool { return !c.IsConnected() })
}

// TestProcessRestart kills the process with SIGKILL: a waiting RPC gets an error
// reply, the process is started again and its data flows again.
func TestProcessRestart(t *testing.T) {
	c, gw, lb := startHelper(t, `{"device":"D","period":10}`, nil)
	firstPID := waitPID(t, gw, 0)
	c.ServerSideRPC(connector.RPCRequest{Device: "D", ID: 9, Method: "silent"})
	if err := syscall.Kill(int(firstPID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	secondPID := waitPID(t, gw, firstPID)
	if c.starts.Load() != 2 {
		t.Errorf("started %d times, want 2", c.starts.Load())
	}
	_, _, _, replies := gw.snapshot()
	if want := []string{`D 9 {"error":"Extension process exited","success":false}`}; !equal(replies, want) {
		t.Errorf("replies = %q, want %q", replies, want)
	}
	if !strings.Contains(lb.String(), "signal: killed") {
		t.Errorf("log does not say why the process stopped:\n%s", lb.String())
	}
	if !strings.Contains(lb.String(), `msg="helper Helper started"`) || !strings.Contains(lb.String(), "stream=stderr") {
		t.Errorf("stderr not logged:\n%s", lb.String())
	}
	c.Close()
	if err := syscall.Kill(int(secondPID), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d still exists after Close: %v", secondPID, err)
	}
}

// waitPID waits for data from a process other than notPID and returns its pid.
func waitPID(t *testing.T, gw *testGateway, notPID int64) int64 {
	t.Helper()
	var pid int64
	waitFor(t, "data from a new process", 10*time.Second, func() bool {
		data, _, _, _ := gw.snapshot()
		for i := len(data) - 1; i >= 0; i-- {
			for _, a := range data[i].Attributes {
				if a.Key == "pid" && a.Value.Int() != notPID {
					pid = a.Value.Int()
					return true
				}
			}
		}
		return false
	})
	return pid
}

// TestProcessGarbage: junk, wrong versions, unknown types and an over-long line are
// skipped and logged a few times; the data after them arrives.
func TestProcessGarbage(t *testing.T) {
	c, gw, lb := startHelper(t, `{"device":"D","period":5,"garbage":true}`, nil)
	waitFor(t, "data after the garbage", 10*time.Second, func() bool { d, _, _, _ := gw.snapshot(); return len(d) >= 3 })
	data, _, _, _ := gw.snapshot()
	if got, want := dataJSON(data[0]), "D/default ts=0 afterGarbage=true"; got != want {
		t.Errorf("first data = %s, want %s", got, want)
	}
	if got, want := dataJSON(data[1]), "D/default ts=0 seq=1 attrs pid="; !strings.HasPrefix(got, want) {
		t.Errorf("second data = %s, want %s...", got, want)
	}
	log := lb.String()
	for _, want := range []string{
		`err="not a JSON object: invalid character 'h' in literal true (expecting 'r')" line="this is not json"`,
		`err="data without \"deviceName\""`,
		`err="protocol version 7 not supported (this gateway speaks 1)"`,
		`err="unknown message type \"teleport\""`,
		`err="line longer than 1048576 bytes dropped"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if c.starts.Load() != 1 {
		t.Errorf("process started %d times, want 1", c.starts.Load())
	}
	// The limiter: at most limitBurst skipped lines are logged per window.
	if n := strings.Count(log, "line from extension process skipped"); n != limitBurst {
		t.Errorf("%d skipped lines logged, want %d (rate limit)", n, limitBurst)
	}
}

// TestProcessCloseKills: a process that ignores "stop" is killed after the grace.
func TestProcessCloseKills(t *testing.T) {
	c, gw, lb := startHelper(t, `{"device":"D","period":20,"ignoreStop":true}`, func(c *processConnector) { c.stopGrace = 300 * time.Millisecond })
	pid := waitPID(t, gw, 0)
	start := time.Now()
	c.Close()
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("Close took %v, want the 300ms grace then a kill", d)
	}
	if err := syscall.Kill(int(pid), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d still exists after Close: %v", pid, err)
	}
	if !strings.Contains(lb.String(), "killing its process group") {
		t.Errorf("kill not logged:\n%s", lb.String())
	}
	n := len(mustData(gw))
	time.Sleep(100 * time.Millisecond)
	if len(mustData(gw)) != n {
		t.Error("data still arrives after Close")
	}
}

func mustData(gw *testGateway) []*connector.ConvertedData {
	d, _, _, _ := gw.snapshot()
	return d
}

// TestProcessQueueFull: a process that never reads stdin fills the pipe, then the
// bounded queue; then attribute updates are dropped and an RPC gets an error reply
// at once. Close still ends within the grace.
func TestProcessQueueFull(t *testing.T) {
	c, gw, lb := startHelper(t, `{"device":"D","period":1000,"deaf":true}`, func(c *processConnector) { c.stopGrace = 200 * time.Millisecond })
	waitPID(t, gw, 0)
	big := strings.Repeat("z", 8<<10)
	for i := 0; i < DownlinkQueueSize+64; i++ {
		c.OnAttributesUpdate(connector.AttributeUpdate{Device: "D", Data: map[string]any{"big": big}})
	}
	c.ServerSideRPC(connector.RPCRequest{Device: "D", ID: 1, Method: "echo"})
	waitFor(t, "queue-full reply", 5*time.Second, func() bool { _, _, _, r := gw.snapshot(); return len(r) == 1 })
	_, _, _, replies := gw.snapshot()
	if want := `D 1 {"error":"Downlink queue full","success":false}`; replies[0] != want {
		t.Errorf("reply = %s, want %s", replies[0], want)
	}
	if !strings.Contains(lb.String(), "attribute update dropped: downlink queue full") {
		t.Error("dropped attribute update not logged")
	}
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
}

// TestProcessRestartBackoff: a program that exits at once is restarted with a
// doubling delay.
func TestProcessRestartBackoff(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "quick"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "quick", "Quick.sh"), []byte("#!/bin/sh\nread cfg\necho '{\"type\":\"data\",\"deviceName\":\"Q\",\"telemetry\":{\"up\":1}}'\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, ok := New(dir, nil).ConnectorFactory("quick", "Quick")
	if !ok {
		t.Fatal("Quick.sh not found")
	}
	gw := &testGateway{}
	log, lb := newLogger()
	c, err := f(gw, connector.Config{Name: "Q", Type: "quick", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	pc := c.(*processConnector)
	pc.minDelay, pc.maxDelay = 40*time.Millisecond, 160*time.Millisecond
	if err := pc.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	waitFor(t, "five starts", 10*time.Second, func() bool { return pc.starts.Load() >= 5 })
	pc.Close()
	log2 := lb.String()
	for _, want := range []string{`err="exit status 3" in=40ms`, `in=80ms`, `in=160ms`} {
		if !strings.Contains(log2, want) {
			t.Errorf("log lacks %s:\n%s", want, log2)
		}
	}
	if strings.Contains(log2, "in=320ms") {
		t.Error("delay passed the maximum")
	}
	if d := mustData(gw); len(d) < 5 || dataJSON(d[0]) != "Q/default ts=0 up=1" {
		t.Errorf("data = %d messages, first %v", len(d), d)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func itoa(i int64) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// TestPythonFileNotExecutable: a Class.py without the executable bit runs with python3.
func TestPythonFileNotExecutable(t *testing.T) {
	src, err := os.ReadFile("../examples/extensions/loadavg/LoadAvgConnector")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "load"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "load", "Load.py"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	loadavg := filepath.Join(dir, "loadavg")
	if err := os.WriteFile(loadavg, []byte("3 2 1 1/1 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, ok := New(dir, nil).ConnectorFactory("load", "Load")
	if !ok {
		t.Fatal("Load.py not found")
	}
	gw := &testGateway{}
	c, err := f(gw, connector.Config{Name: "L", Type: "load", Raw: json.RawMessage(`{"deviceName":"H","pollPeriod":0.05,"path":` + jsonString(loadavg) + `}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "data", 10*time.Second, func() bool { return len(mustData(gw)) > 0 })
	d := mustData(gw)[0]
	if got := strings.Replace(dataJSON(d), " ts="+itoa(d.Telemetry[0].TS), "", 1); got != "H/host load1=3 load5=2 load15=1 running=1 processes=1" {
		t.Errorf("data = %s", got)
	}
}
