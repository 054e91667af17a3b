package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/brokertest"
)

// TestCustomGatewayEndToEnd builds this folder's main.go into a gateway binary (the
// way a user makes a custom build), runs it as a child process against the embedded
// MQTT broker and a TCP line device played by the test, and checks the exact bytes
// on both sides: telemetry and attributes up, an RPC round trip, an attribute update
// down, a connector RPC, and a clean stop on SIGINT.
func TestCustomGatewayEndToEnd(t *testing.T) {
	bin := buildGateway(t)
	b := brokertest.Start(t, "TOKEN")
	dev := startDevice(t)
	dir := writeConfig(t, b, dev.port())

	// `check` validates the shipped files and the test's, without dialing anything.
	for _, cfg := range []string{"tb_gateway.json", filepath.Join(dir, "tb_gateway.json")} {
		out, err := exec.Command(bin, "check", "--config", cfg).CombinedOutput()
		if err != nil {
			t.Fatalf("check %s: %v\n%s", cfg, err, out)
		}
		if !strings.Contains(string(out), "TCP line connector           type tcpline  devices 1") {
			t.Fatalf("check %s output:\n%s", cfg, out)
		}
	}

	gw := startGateway(t, bin, dir)

	// The device is dialled and sends one line.
	conn, r := dev.accept(t, gw)
	send(t, conn, "ts=1700000000000;temp=21.5;pressure=1.2;burner=on;starts=42;fw=1.2.3;serial=SN-0042;rssi=-70\n")

	expect(t, b, gw, "v1/gateway/connect", nil, `{"device":"Boiler1","type":"boiler"}`)
	expect(t, b, gw, "v1/gateway/telemetry", nil,
		`{"Boiler1":[{"ts":1700000000000,"values":{"temp":21.5,"pressure":1.2,"burner":true,"starts":42}}]}`)
	expect(t, b, gw, "v1/gateway/attributes", nil, `{"Boiler1":{"fw":"1.2.3","serial":"SN-0042"}}`)

	// RPC with response: the device sees "method params-json", answers with the
	// configured prefix, and the reply reaches the platform.
	b.Publish("v1/gateway/rpc", []byte(`{"device":"Boiler1","data":{"id":7,"method":"getStatus","params":{"verbose":true}}}`))
	if got := recv(t, conn, r, gw); got != "getStatus {\"verbose\":true}\n" {
		t.Fatalf("device got %q", got)
	}
	send(t, conn, "status {\"ok\":true,\"uptime\":42}\n")
	expect(t, b, gw, "v1/gateway/rpc", hasID(7), `{"device":"Boiler1","id":7,"data":{"result":{"ok":true,"uptime":42}}}`)

	// RPC without response, sent under its "command" name.
	b.Publish("v1/gateway/rpc", []byte(`{"device":"Boiler1","data":{"id":8,"method":"resetCounters","params":{"all":true}}}`))
	if got := recv(t, conn, r, gw); got != "reset {\"all\":true}\n" {
		t.Fatalf("device got %q", got)
	}
	expect(t, b, gw, "v1/gateway/rpc", hasID(8), `{"device":"Boiler1","id":8,"data":{"success":true}}`)

	// Attribute update: "mode" has its own template, "setpoint" takes the device's
	// attributeTemplate.
	b.Publish("v1/gateway/attributes", []byte(`{"device":"Boiler1","data":{"setpoint":22.5,"mode":"eco"}}`))
	for _, want := range []string{"mode eco\n", "set setpoint=22.5\n"} {
		if got := recv(t, conn, r, gw); got != want {
			t.Fatalf("device got %q, want %q", got, want)
		}
	}

	// A connector RPC to the gateway itself: tcpline_devices.
	b.Publish("v1/devices/me/rpc/request/42", []byte(`{"method":"tcpline_devices","params":{}}`))
	expect(t, b, gw, "v1/devices/me/rpc/response/42", nil,
		fmt.Sprintf(`{"result":{"Boiler1":{"address":"127.0.0.1:%d","connected":true}},"success":true}`, dev.port()))

	// SIGINT: exit 0, the device's connection is closed, the device is disconnected.
	if err := gw.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gw.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the gateway did not stop within 10 s of SIGINT\n%s", gw.logs())
	}
	if code := gw.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0\n%s", code, gw.logs())
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("device connection still open after the gateway stopped (read %q)", line)
	}
	if m := b.Messages("v1/gateway/disconnect"); len(m) != 1 || string(m[0].Payload) != `{"device":"Boiler1"}` {
		t.Fatalf("disconnect messages %q\n%s", m, gw.logs())
	}
}

// buildGateway builds ./ (this folder's main.go) with the toolchain running the test.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gw")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go") //lint:ignore SA1019 the toolchain that runs this test, not whatever go is on PATH
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("custom gateway built in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// writeConfig writes the shipped tb_gateway.json and tcpline.json to a temporary
// folder, pointed at the test's broker and device: the files the guide shows are the
// files this test runs.
func writeConfig(t *testing.T, b *brokertest.Broker, devicePort int) string {
	t.Helper()
	dir := t.TempDir()
	var main map[string]any
	readJSON(t, "tb_gateway.json", &main)
	tb := main["thingsboard"].(map[string]any)
	tb["host"], tb["port"] = b.Host(), b.Port()
	tb["security"].(map[string]any)["accessToken"] = "TOKEN"
	writeJSON(t, filepath.Join(dir, "tb_gateway.json"), main)

	var conn map[string]any
	readJSON(t, "tcpline.json", &conn)
	d := conn["devices"].([]any)[0].(map[string]any)
	d["port"] = devicePort
	conn["logLevel"] = "DEBUG"
	writeJSON(t, filepath.Join(dir, "tcpline.json"), conn)
	return dir
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// child is the running gateway process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	mu   sync.Mutex
	out  bytes.Buffer // stdout and stderr
}

func (c *child) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *child) logs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return "--- gateway output ---\n" + c.out.String()
}

func startGateway(t *testing.T, bin, dir string) *child {
	t.Helper()
	c := &child{done: make(chan struct{})}
	c.cmd = exec.Command(bin, "run", "--config", filepath.Join(dir, "tb_gateway.json"))
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = c, c
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Log(c.logs())
		}
	})
	return c
}

// device is the TCP line device the gateway dials.
type device struct {
	ln    net.Listener
	conns chan net.Conn
}

func startDevice(t *testing.T) *device {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &device{ln: ln, conns: make(chan net.Conn, 4)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case d.conns <- c:
			default:
				c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(d.conns)
		for c := range d.conns {
			c.Close()
		}
	})
	return d
}

func (d *device) port() int { return d.ln.Addr().(*net.TCPAddr).Port }

func (d *device) accept(t *testing.T, gw *child) (net.Conn, *bufio.Reader) {
	t.Helper()
	select {
	case c := <-d.conns:
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	case <-gw.done:
		t.Fatalf("the gateway exited before connecting to the device\n%s", gw.logs())
	case <-time.After(10 * time.Second):
		t.Fatalf("the gateway did not connect to the device within 10 s\n%s", gw.logs())
	}
	return nil, nil
}

func send(t *testing.T, c net.Conn, line string) {
	t.Helper()
	if _, err := c.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, c net.Conn, r *bufio.Reader, gw *child) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("device read: %v (got %q)\n%s", err, s, gw.logs())
	}
	return s
}

func hasID(id int) func(brokertest.Msg) bool {
	return func(m brokertest.Msg) bool { return strings.Contains(string(m.Payload), fmt.Sprintf(`"id":%d,`, id)) }
}

// expect waits for a message on topic (that ok accepts) and checks its exact payload.
func expect(t *testing.T, b *brokertest.Broker, gw *child, topic string, ok func(brokertest.Msg) bool, want string) {
	t.Helper()
	m, found := b.WaitFor(topic, ok, 10*time.Second)
	if !found {
		t.Fatalf("nothing on %s within 10 s (want %s)\n%s", topic, want, gw.logs())
	}
	if string(m.Payload) != want {
		t.Fatalf("%s payload\n got %s\nwant %s", topic, m.Payload, want)
	}
	if m.Username != "TOKEN" {
		t.Fatalf("%s published by %q, want the gateway's access token", topic, m.Username)
	}
}
